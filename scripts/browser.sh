#!/usr/bin/env bash
# Installs what the browser tests use to drive the console in a real headless Chromium:
# Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver) with
# fonts-liberation to render text, from apt, once per machine; and playwright-core, locked in
# tests/browser/package-lock.json, into .state/browser/node (`npm ci --ignore-scripts`: it never
# downloads a browser of its own; launch it with executablePath '/usr/bin/chromium'). Does nothing
# when all of it is already there and the npm install came from the same files.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/.state/browser
say() { echo "browser: $*" >&2; }
die() { echo "browser: error: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 is missing: install $2"; }
need npm "Node.js 20 or later with npm"
need curl "curl (apt-get install curl): the console test sends the curl the console shows"
stamp() { cat "$@" | sha256sum | cut -c1-16; }

# --- Debian's Chromium --------------------------------------------------------------------
# chromium only recommends fonts-liberation, and --no-install-recommends skips it (and the
# desktop extras: upower, udev, notification daemon, printing).
packages=(chromium chromium-driver fonts-liberation)
missing=()
for p in "${packages[@]}"; do
    [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null || die "${missing[*]} missing and there is no apt-get; install Chromium by hand"
    say "installing Debian's ${missing[*]} (once per machine)"
    export DEBIAN_FRONTEND=noninteractive
    sudo=""
    [[ $(id -u) == 0 ]] || sudo=sudo
    log=$(mktemp)
    trap 'rm -f "$log"' EXIT
    apt_install() { $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1; }
    # The package lists may be missing or stale on a fresh machine; update only when needed.
    if ! apt_install; then
        $sudo apt-get update -q >"$log" 2>&1 \
            || { cat "$log" >&2; die "apt-get update failed; are Debian's mirrors reachable?"; }
        apt_install || { cat "$log" >&2; die "apt-get install ${missing[*]} failed (see above)"; }
    fi
    [[ -x /usr/bin/chromium ]] || die "apt installed chromium but /usr/bin/chromium is not there"
fi

# --- playwright-core ----------------------------------------------------------------------
node_stamp=$(stamp "$root/tests/browser/package.json" "$root/tests/browser/package-lock.json")
if [ "$(cat "$dir/node.stamp" 2>/dev/null)" != "$node_stamp" ]; then
    say "installing playwright-core (npm, locked) into .state/browser/node"
    rm -rf "$dir/node"
    mkdir -p "$dir/node"
    cp "$root/tests/browser/package.json" "$root/tests/browser/package-lock.json" "$dir/node/"
    (cd "$dir/node" && npm ci --silent --no-audit --no-fund --ignore-scripts)
    echo "$node_stamp" >"$dir/node.stamp"
fi
