# shellcheck shell=bash
# Shared helper, sourced by the other scripts: make sure the project's
# virtualenv (.venv at the repository root) exists, holds an editable install
# of pgcheckpoint with the extras the caller needs, and is first on PATH.
#
# PGC_EXTRAS picks the extras: "dev" (the default: tests, linters, every extra)
# or "demo" (the package, its embedded server and LangGraph: what
# scripts/demo.sh needs, a few seconds to install). An install of "dev" also
# satisfies "demo". pip runs only when pyproject.toml (or the Python version)
# changed since the last successful install of those extras, so sourcing this
# is instant on later runs. Override the interpreter with PYTHON=/path/to/python3.

_pgc_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_pgc_venv="${_pgc_root}/.venv"
_pgc_python="${PYTHON:-python3}"

if ! "${_pgc_python}" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "error: pgcheckpoint needs Python >= 3.10; '${_pgc_python}' is missing or older." >&2
    echo "       Set PYTHON=/path/to/python3.10+ and try again." >&2
    return 1 2>/dev/null || exit 1
fi

if [[ ! -x "${_pgc_venv}/bin/python" ]]; then
    echo "==> creating virtualenv in ${_pgc_venv}" >&2
    rm -rf "${_pgc_venv}"
    "${_pgc_python}" -m venv "${_pgc_venv}" || { return 1 2>/dev/null || exit 1; }
fi

_pgc_want="$(
    cd "${_pgc_root}" &&
    { cat pyproject.toml; "${_pgc_venv}/bin/python" -c 'import sys; print(sys.version)'; } |
    cksum | cut -d' ' -f1
)"
_pgc_extras="${PGC_EXTRAS:-dev}"
_pgc_stamp="${_pgc_venv}/.pgcheckpoint-installed-${_pgc_extras}"
# The demo skips compiling every installed module to bytecode up front (Python
# compiles what it imports on first use): less work before the first output.
_pgc_pip_flags=""
[[ "${_pgc_extras}" == demo ]] && _pgc_pip_flags="--no-compile"
_pgc_ok=""
for _pgc_have in "${_pgc_extras}" dev; do
    if [[ "$(cat "${_pgc_venv}/.pgcheckpoint-installed-${_pgc_have}" 2>/dev/null)" == "${_pgc_want}" ]]; then
        _pgc_ok=1
    fi
done
if [[ -z "${_pgc_ok}" ]]; then
    echo "==> installing pgcheckpoint[${_pgc_extras}] into ${_pgc_venv} (pyproject.toml changed)" >&2
    # pip's output goes to a log shown only on failure, so the scripts stay quiet.
    if (cd "${_pgc_root}" &&
        "${_pgc_venv}/bin/python" -m pip install --disable-pip-version-check ${_pgc_pip_flags} \
            -e ".[${_pgc_extras}]" >"${_pgc_venv}/pip-install.log" 2>&1); then
        echo "${_pgc_want}" >"${_pgc_stamp}"
    else
        tail -n 40 "${_pgc_venv}/pip-install.log" >&2
        echo "error: 'pip install -e .[${_pgc_extras}]' failed; full log: ${_pgc_venv}/pip-install.log" >&2
        return 1 2>/dev/null || exit 1
    fi
fi

export VIRTUAL_ENV="${_pgc_venv}"
export PATH="${_pgc_venv}/bin:${PATH}"
hash -r 2>/dev/null || true
unset _pgc_root _pgc_venv _pgc_python _pgc_want _pgc_stamp _pgc_extras _pgc_ok _pgc_have _pgc_pip_flags
