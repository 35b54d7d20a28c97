# Sourced by the bench scripts: runs from the repository, keeps a scratch folder and the
# processes it starts, removes and stops them on exit, and starts a private memory:// Tansu
# (so the broker's disk is not what is measured).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
export PATH=$HOME/.cargo/bin:$PATH
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
say() { printf 'bench: %s\n' "$*" >&2; }

memory_tansu() { # port
    say "starting a memory:// Tansu on 127.0.0.1:$1"
    (cd "$work" && exec tansu broker --listener-url "tcp://127.0.0.1:$1" \
        --advertised-listener-url "tcp://127.0.0.1:$1" --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1) &
    pids+=($!)
}
