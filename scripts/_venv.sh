# shellcheck shell=bash
# Shared helper, sourced by the other scripts: make sure the project's
# virtualenv (.venv at the repository root) exists, holds an editable install
# of pgcheckpoint with the extras the caller needs, and is first on PATH.
#
# PGC_EXTRAS picks the extras: "dev" (the default: tests, linters, every extra)
# or "demo" (the package, its embedded server and LangGraph: what
# scripts/demo.sh needs). An install of "dev" also satisfies "demo". The
# install runs only when pyproject.toml (or the Python version) changed since
# the last successful install of those extras, so sourcing this is instant on
# later runs. Override the interpreter with PYTHON=/path/to/python3.
#
# The installer is uv when it can be had (a `uv` on PATH, else the uv wheel from
# PyPI, installed into the virtualenv itself), pip otherwise or when uv fails;
# PGC_INSTALLER=pip forces pip. Measured on a 2-core machine, fresh clone,
# `pgcheckpoint[demo]` (~75 packages, pgserver's bundled PostgreSQL among them):
# pip took 60-90 s (resolving, then installing one wheel after another), uv
# 5-8 s with an empty cache (parallel downloads, and it installs wheels without
# byte-compiling them). The virtualenv gets pip as well (uv installs it), so it
# works like any other.

_pgc_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_pgc_venv="${_pgc_root}/.venv"
_pgc_python="${PYTHON:-python3}"

if ! "${_pgc_python}" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "error: pgcheckpoint needs Python >= 3.10; '${_pgc_python}' is missing or older." >&2
    echo "       Set PYTHON=/path/to/python3.10+ and try again." >&2
    return 1 2>/dev/null || exit 1
fi

# uv to install with: one on PATH, or the one an earlier run put in the venv.
_pgc_uv=""
if [[ "${PGC_INSTALLER:-}" != pip ]]; then
    if [[ -x "${_pgc_venv}/bin/uv" ]]; then
        _pgc_uv="${_pgc_venv}/bin/uv"
    elif command -v uv >/dev/null 2>&1; then
        _pgc_uv="$(command -v uv)"
    fi
fi

if [[ ! -x "${_pgc_venv}/bin/python" ]]; then
    echo "==> creating virtualenv in ${_pgc_venv}" >&2
    rm -rf "${_pgc_venv}"
    # Without pip: ensurepip costs seconds, and uv installs pip later with the
    # rest (or _pgc_ensure_pip does, when pip installs everything).
    # uv gets the real interpreter, not a wrapper such as a pyenv shim.
    if ! { [[ -n "${_pgc_uv}" ]] && "${_pgc_uv}" venv --quiet --python \
            "$("${_pgc_python}" -c 'import sys; print(sys.executable)')" "${_pgc_venv}"; }; then
        rm -rf "${_pgc_venv}"
        "${_pgc_python}" -m venv --without-pip "${_pgc_venv}" || { return 1 2>/dev/null || exit 1; }
    fi
fi
[[ -n "${_pgc_uv}" && ! -x "${_pgc_uv}" ]] && _pgc_uv=""  # it was in a broken venv, now gone

_pgc_want="$(
    cd "${_pgc_root}" &&
    { cat pyproject.toml; "${_pgc_venv}/bin/python" -c 'import sys; print(sys.version)'; } |
    cksum | cut -d' ' -f1
)"
_pgc_extras="${PGC_EXTRAS:-dev}"
_pgc_stamp="${_pgc_venv}/.pgcheckpoint-installed-${_pgc_extras}"
_pgc_ok=""
for _pgc_have in "${_pgc_extras}" dev; do
    if [[ "$(cat "${_pgc_venv}/.pgcheckpoint-installed-${_pgc_have}" 2>/dev/null)" == "${_pgc_want}" ]]; then
        _pgc_ok=1
    fi
done

_pgc_ensure_pip() {
    "${_pgc_venv}/bin/python" -m pip --version >/dev/null 2>&1 ||
        "${_pgc_venv}/bin/python" -m ensurepip --default-pip
}

_pgc_install() {
    # Runs in a subshell, its output in the log. uv first, when there is one or
    # its wheel can be fetched: with the interpreter's own pip, which installs
    # into the venv without the venv needing pip, else with pip in the venv.
    local venv_py="${_pgc_venv}/bin/python"
    if [[ -z "${_pgc_uv}" && "${PGC_INSTALLER:-}" != pip ]]; then
        echo "--- fetching uv"
        if "${_pgc_python}" -m pip --python "${venv_py}" install --disable-pip-version-check \
                --quiet uv || { _pgc_ensure_pip &&
                "${venv_py}" -m pip install --disable-pip-version-check --quiet uv; }; then
            _pgc_uv="${_pgc_venv}/bin/uv"
        fi
    fi
    if [[ -n "${_pgc_uv}" ]]; then
        echo "--- uv pip install"
        if "${_pgc_uv}" pip install --python "${venv_py}" -e ".[${_pgc_extras}]" pip; then
            return 0
        fi
        echo "--- uv failed; installing with pip instead"
    fi
    echo "--- pip install"
    # --no-compile: Python compiles what it imports on first use, no need to
    # compile every installed module up front.
    _pgc_ensure_pip &&
        "${venv_py}" -m pip install --disable-pip-version-check --no-compile \
            -e ".[${_pgc_extras}]"
}

if [[ -z "${_pgc_ok}" ]]; then
    echo "==> installing pgcheckpoint[${_pgc_extras}] into ${_pgc_venv} (pyproject.toml changed)" >&2
    # The installer's output goes to a log shown only on failure, so the scripts stay quiet.
    if (cd "${_pgc_root}" && _pgc_install >"${_pgc_venv}/pip-install.log" 2>&1); then
        echo "${_pgc_want}" >"${_pgc_stamp}"
    else
        tail -n 40 "${_pgc_venv}/pip-install.log" >&2
        echo "error: installing .[${_pgc_extras}] failed; full log: ${_pgc_venv}/pip-install.log" >&2
        return 1 2>/dev/null || exit 1
    fi
fi

export VIRTUAL_ENV="${_pgc_venv}"
export PATH="${_pgc_venv}/bin:${PATH}"
hash -r 2>/dev/null || true
unset -f _pgc_ensure_pip _pgc_install
unset _pgc_root _pgc_venv _pgc_python _pgc_want _pgc_stamp _pgc_extras _pgc_ok _pgc_have _pgc_uv
