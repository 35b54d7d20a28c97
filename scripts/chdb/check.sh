#!/usr/bin/env bash
# Checks sigstage's ClickHouse SQL (migrations, analyst queries, the sink's statements) against
# the newest ClickHouse engine, in process, with chdb: see check.py. No server, no network after
# the first run.
#
# chdb lives in a virtualenv outside the checkout, made once per machine (about 900 MB, a minute
# or so): ${XDG_CACHE_HOME:-$HOME/.cache}/sigstage/chdb-venv (STACK_CHDB_VENV overrides), made
# again when requirements.txt or the Python changes. PYTHON picks the interpreter (3.9 or later;
# default python3).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${STACK_CHDB_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/sigstage/chdb-venv}
python=${PYTHON:-python3}
requirements=$here/requirements.txt

say() { printf 'chdb check: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

command -v "$python" >/dev/null || die "$python not found; set PYTHON to a Python 3.9 or later"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' || die "$python is older than 3.9; set PYTHON"
# What the venv was made from: the pinned requirements and the interpreter.
want=$({ cat "$requirements"; "$python" -c 'import sys; print(sys.executable, sys.version)'; } | sha256sum)
want=${want%% *}
stamp=$venv/.sigstage-requirements.sha256

venv_ok() { [[ -x $venv/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; }

make_venv() {
    if [[ -e $venv && ! -f $venv/pyvenv.cfg ]]; then die "$venv exists and is not a virtualenv; move it away"; fi
    say "making $venv (once per machine): $(grep -E '^chdb' "$requirements" | paste -sd' ')"
    rm -rf "$venv"
    "$python" -m venv "$venv" || die "$python -m venv failed (on Debian: apt-get install python3-venv)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: -r "$requirements" \
        || die "pip install -r $requirements failed"
    echo "$want" >"$stamp"
}

if ! venv_ok; then
    mkdir -p "$(dirname "$venv")"
    # One maker at a time: a second run waits, then finds the venv made.
    exec 9>"$venv.lock"
    if command -v flock >/dev/null; then flock 9; fi
    venv_ok || make_venv
    exec 9>&-
fi
exec "$venv/bin/python" "$here/check.py" "$@"
