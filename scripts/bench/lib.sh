# Sourced by the bench scripts: runs from the repository, keeps a scratch folder and the
# processes it starts, removes and stops them on exit, and starts a private Kafka broker there
# (so the figures are not mixed with `make run`'s topics or another bench's).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
export PATH=$HOME/.cargo/bin:$PATH
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    scripts/stack.sh stop "$work/kafka" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
say() { printf 'bench: %s\n' "$*" >&2; }

private_kafka() { # port (its controller listens on port+10)
    say "starting a private Kafka broker on 127.0.0.1:$1"
    scripts/stack.sh broker "$work/kafka" "$1" $(($1 + 10))
}
