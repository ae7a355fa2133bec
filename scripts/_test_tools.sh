# Sourced by scripts/test.sh: installs the extra server software some tests use
# on servers of their own (Debian's pgbouncer for the transaction-mode tests,
# postgresql-15-cron for the scheduled-sweep test, chromium for the inspector's
# browser tests, driven by Playwright without a browser download) when it is
# missing and this is a Debian machine where we are root. Tests that need a
# tool that still is not there skip and say why.
install_test_tools() {
    local missing=()
    command -v pgbouncer >/dev/null 2>&1 || [[ -x /usr/sbin/pgbouncer ]] || missing+=(pgbouncer)
    # pg_cron for the test that schedules the in-database sweep (a throwaway
    # PostgreSQL 15 cluster preloads it; the machine's own server is untouched).
    if [[ -d /usr/lib/postgresql/15/lib && ! -e /usr/lib/postgresql/15/lib/pg_cron.so ]]; then
        missing+=(postgresql-15-cron)
    fi
    # Debian's Chromium for tests/inspector/test_browser.py (Playwright drives it
    # through executable_path; `playwright install` is never run).
    [[ -x /usr/bin/chromium ]] || missing+=(chromium)
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        echo "note: ${missing[*]} not installed (needs root and apt-get); those tests will skip"
        return 0
    fi
    echo "installing ${missing[*]} for the tests that start their own servers"
    # Only the files are wanted: keep Debian from starting a pgbouncer service.
    if ! (apt-get update -qq >/dev/null 2>&1 || true; \
          RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
              "${missing[@]}" >/dev/null 2>&1); then
        echo "note: could not install ${missing[*]}; those tests will skip"
    fi
    return 0
}
