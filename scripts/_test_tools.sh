# Sourced by scripts/test.sh: installs the extra servers some tests start on
# ports of their own (Debian's pgbouncer for the transaction-mode tests), when
# they are missing and this is a Debian machine where we are root. Tests that
# need a tool that still is not there skip and say why.
install_test_tools() {
    local missing=()
    command -v pgbouncer >/dev/null 2>&1 || [[ -x /usr/sbin/pgbouncer ]] || missing+=(pgbouncer)
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        echo "note: ${missing[*]} not installed (needs root and apt-get); those tests will skip"
        return 0
    fi
    echo "installing ${missing[*]} for the tests that start their own servers"
    # Only the binary is wanted: keep Debian from starting a pgbouncer service.
    if ! (apt-get update -qq >/dev/null 2>&1 || true; \
          RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
              "${missing[@]}" >/dev/null 2>&1); then
        echo "note: could not install ${missing[*]}; those tests will skip"
    fi
    return 0
}
