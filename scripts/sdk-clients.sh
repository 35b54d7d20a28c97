#!/usr/bin/env bash
# Installs the real SDK clients the Tracking API tests drive (tests/it/tracking_sdks.rs), and the
# providers' signing libraries the signature tests use (tests/it/edge_signatures.rs), into
# .state/sdk: the Python packages pinned in tests/sdk/requirements.txt (PyPI) and the npm
# packages locked in tests/sdk/package-lock.json (`npm ci`). Does nothing when what is installed
# came from the same files.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/.state/sdk
say() { echo "sdk-clients: $*" >&2; }
need() { command -v "$1" >/dev/null || { say "$1 is missing: install $2"; exit 1; }; }
need python3 "Python 3 with pip (apt-get install python3-pip)"
need npm "Node.js 20 or later with npm"
mkdir -p "$dir/node"
stamp() { cat "$@" | sha256sum | cut -c1-16; }

python_stamp=$(stamp "$root/tests/sdk/requirements.txt")
if [ "$(cat "$dir/python.stamp" 2>/dev/null)" != "$python_stamp" ]; then
    say "installing the Python SDKs (PyPI, pinned) into .state/sdk/python"
    rm -rf "$dir/python"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$dir/python" \
        -r "$root/tests/sdk/requirements.txt"
    echo "$python_stamp" >"$dir/python.stamp"
fi

node_stamp=$(stamp "$root/tests/sdk/package.json" "$root/tests/sdk/package-lock.json")
if [ "$(cat "$dir/node.stamp" 2>/dev/null)" != "$node_stamp" ]; then
    say "installing the Node SDKs (npm, locked) into .state/sdk/node"
    cp "$root/tests/sdk/package.json" "$root/tests/sdk/package-lock.json" "$dir/node/"
    (cd "$dir/node" && npm ci --silent --no-audit --no-fund --ignore-scripts)
    echo "$node_stamp" >"$dir/node.stamp"
fi
