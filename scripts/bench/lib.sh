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

# A ClickHouse database of its own (NAME and the script's pid), dropped on exit: sets $database
# and exports SIGSTAGE_CLICKHOUSE_DATABASE.
own_database() { # NAME
    database=$1_$$
    export SIGSTAGE_CLICKHOUSE_DATABASE=$database
    trap 'curl -fs --data-binary "DROP DATABASE IF EXISTS $database" "${SIGSTAGE_CLICKHOUSE_URL:-http://127.0.0.1:8123}/" >/dev/null || true; cleanup' EXIT
}

private_kafka() { # port (its controller listens on port+10)
    say "starting a private Kafka broker on 127.0.0.1:$1"
    scripts/stack.sh broker "$work/kafka" "$1" $(($1 + 10))
}

# Starts `sigstage run` (release build, every role in one process) with the environment exported,
# listening on $SIGSTAGE_HTTP_ADDR: sets $run (its pid) once /readyz answers; shows its log and
# fails when it does not within 30 s.
start_run() {
    target/release/sigstage run >"$work/run.out" 2>"$work/run.log" &
    run=$!
    pids+=("$run")
    for _ in $(seq 150); do curl -fs "http://$SIGSTAGE_HTTP_ADDR/readyz" >/dev/null && return; sleep 0.2; done
    say "sigstage run did not become ready:"
    tail "$work/run.log"
    exit 1
}

# Starts `sigstage ingest` (release build) on 127.0.0.1:PORT against a private broker, with a
# database, a topic prefix and a key of its own: sets $key and $edge (its pid).
start_edge() { # port kafka_port database prefix org
    export SIGSTAGE_KAFKA_BROKERS=127.0.0.1:$2 SIGSTAGE_CLICKHOUSE_DATABASE=$3 SIGSTAGE_TOPIC_PREFIX=$4
    export SIGSTAGE_HTTP_ADDR=127.0.0.1:$1 SIGSTAGE_LOG_FORMAT=json RUST_LOG=warn
    private_kafka "$2"
    target/release/sigstage migrate 2>/dev/null
    key=$(target/release/sigstage keys create --org "$5" 2>/dev/null)
    target/release/sigstage ingest >"$work/edge.out" 2>"$work/edge.log" &
    edge=$!
    pids+=("$edge")
}
