#!/usr/bin/env bash
# The local stack sigstage runs against: Tansu (Kafka protocol) on 127.0.0.1:9092 and ClickHouse
# on 127.0.0.1:8123 (HTTP) / 9000 (native). Installs what is missing, keeps every file under the
# state folder (default .state/ of this checkout), and is idempotent.
#
#   scripts/stack.sh up | down | status
#   scripts/stack.sh test-broker   (re)start a Tansu with empty storage on 127.0.0.1:9093 for tests
#
# STACK_STATE_DIR      where data, logs and pid files live (default: <repo>/.state)
# STACK_KAFKA_STORAGE  Tansu storage engine URL (default: sqlite://tansu.db, durable)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
state=${STACK_STATE_DIR:-$repo/.state}
kafka_storage=${STACK_KAFKA_STORAGE:-sqlite://tansu.db}
tansu_version=0.6.0
kafka_port=9092
test_kafka_port=9093
ch_http_port=8123
ch_native_port=9000

say() { printf 'stack: %s\n' "$*" >&2; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

# --- probes -------------------------------------------------------------------------------

# Sends a Kafka ApiVersions v0 request and checks the reply carries our correlation id.
kafka_answers() { # [port]
    local reply port=${1:-$kafka_port}
    reply=$(timeout 3 bash -c "
        exec 3<>/dev/tcp/127.0.0.1/$port || exit 1
        printf '\x00\x00\x00\x0e\x00\x12\x00\x00\x00\x00\x00\x01\x00\x04ping' >&3
        head -c 8 <&3 | od -An -tx1" 2>/dev/null) || return 1
    [[ $(echo $reply) == *"00 00 00 01" ]]
}

clickhouse_answers() {
    [[ $(curl -fsS --max-time 2 "http://127.0.0.1:$ch_http_port/ping" 2>/dev/null) == "Ok." ]]
}

port_owner() {
    ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -1
}

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() { # name seconds probe log
    local name=$1 secs=$2 probe=$3 log=$4 i
    for ((i = 0; i < secs * 5; i++)); do
        if $probe; then return 0; fi
        sleep 0.2
    done
    say "$name did not answer within ${secs}s; last lines of $log:"
    tail -n 20 "$log" >&2 || true
    return 1
}

# --- install ------------------------------------------------------------------------------

tansu_bin() {
    if command -v tansu >/dev/null 2>&1; then command -v tansu
    elif [[ -x $HOME/.cargo/bin/tansu ]]; then echo "$HOME/.cargo/bin/tansu"
    fi
}

install_tansu() {
    local bin
    bin=$(tansu_bin)
    if [[ -n $bin ]] && "$bin" --version 2>/dev/null | grep -q "$tansu_version"; then return; fi
    command -v cargo >/dev/null || die "cargo is not on PATH; install Rust (rustup) first"
    say "installing Tansu $tansu_version from crates.io (once per machine; about 12-14 minutes on 2 cores)"
    cargo install tansu --version "$tansu_version" --locked --features dynostore,libsql \
        || die "cargo install tansu failed (see the compiler output above); is crates.io reachable?"
}

install_clickhouse() {
    if command -v clickhouse-server >/dev/null && command -v clickhouse-client >/dev/null; then return; fi
    command -v apt-get >/dev/null || die "clickhouse-server is missing and there is no apt-get; install ClickHouse by hand"
    say "installing Debian's clickhouse-server and clickhouse-client (once per machine)"
    export DEBIAN_FRONTEND=noninteractive
    local sudo=""
    [[ $(id -u) == 0 ]] || sudo=sudo
    $sudo apt-get update -q >/dev/null || die "apt-get update failed; are Debian's mirrors reachable?"
    # The package's postinst may try to start the system service; we never use it.
    $sudo apt-get install -y -q clickhouse-server clickhouse-client >/dev/null \
        || die "apt-get install clickhouse-server clickhouse-client failed"
}

# --- start --------------------------------------------------------------------------------

start_kafka() {
    local pidfile=$state/tansu/tansu.pid log=$state/tansu/tansu.log owner
    mkdir -p "$state/tansu"
    if pid_alive "$pidfile" && kafka_answers; then say "Tansu already running (pid $(cat "$pidfile"))"; return; fi
    if kafka_answers; then
        say "a Kafka broker already answers on 127.0.0.1:$kafka_port ($(port_owner $kafka_port)); using it"
        return
    fi
    owner=$(port_owner $kafka_port)
    [[ -z $owner ]] || die "port $kafka_port is taken by $owner, which does not speak Kafka; stop it and retry"
    install_tansu
    say "starting Tansu on 127.0.0.1:$kafka_port (storage $kafka_storage, log $log)"
    # exec, so the recorded pid is the broker itself, leader of its own session.
    (cd "$state/tansu" && exec setsid nohup "$(tansu_bin)" broker \
        --listener-url "tcp://127.0.0.1:$kafka_port" \
        --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
        --storage-engine "$kafka_storage" >"$log" 2>&1 </dev/null) &
    echo $! >"$pidfile"
    wait_for Tansu 60 kafka_answers "$log" || die "Tansu failed to start"
}

start_clickhouse() {
    local dir=$state/clickhouse pidfile=$state/clickhouse/clickhouse.pid owner
    mkdir -p "$dir/log" "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas"
    if pid_alive "$pidfile" && clickhouse_answers; then say "ClickHouse already running (pid $(cat "$pidfile"))"; return; fi
    if clickhouse_answers; then
        say "a ClickHouse server already answers on 127.0.0.1:$ch_http_port ($(port_owner $ch_http_port)); using it"
        return
    fi
    for port in $ch_http_port $ch_native_port; do
        owner=$(port_owner "$port")
        [[ -z $owner ]] || die "port $port is taken by $owner, which is not a ClickHouse server; stop it and retry"
    done
    install_clickhouse
    sed "s|@STATE@|$dir|g" "$repo/scripts/clickhouse/config.xml" >"$dir/config.xml"
    cp "$repo/scripts/clickhouse/users.xml" "$dir/users.xml"
    say "starting ClickHouse on 127.0.0.1:$ch_http_port (data and logs in $dir)"
    (cd "$dir" && exec setsid nohup clickhouse-server --config-file="$dir/config.xml" \
        >"$dir/log/stdout.log" 2>&1 </dev/null) &
    echo $! >"$pidfile"
    wait_for ClickHouse 60 clickhouse_answers "$dir/log/clickhouse-server.err.log" || die "ClickHouse failed to start"
}

# --- stop ---------------------------------------------------------------------------------

# Tests get a broker of their own, with empty storage for every run: Tansu's sqlite storage slows
# down (and eventually stalls) as thousands of test topics pile up, and test data has no reason to
# last. It is sqlite, not memory://: Tansu 0.6's memory engine reports watermarks per batch, not
# per record.
start_test_kafka() {
    local dir=$state/tansu-test pidfile=$state/tansu-test/tansu.pid owner
    mkdir -p "$dir"
    stop_pid "test Tansu" "$pidfile" >/dev/null 2>&1
    rm -f "$dir"/tansu-test.db*
    owner=$(port_owner $test_kafka_port)
    [[ -z $owner ]] || die "port $test_kafka_port (the test broker) is taken by $owner; stop it and retry"
    install_tansu
    (cd "$dir" && exec setsid nohup "$(tansu_bin)" broker \
        --listener-url "tcp://127.0.0.1:$test_kafka_port" \
        --advertised-listener-url "tcp://127.0.0.1:$test_kafka_port" \
        --storage-engine sqlite://tansu-test.db >"$dir/tansu.log" 2>&1 </dev/null) &
    echo $! >"$pidfile"
    wait_for "test Tansu" 60 "kafka_answers $test_kafka_port" "$dir/tansu.log" || die "the test broker failed to start"
    say "test broker (empty sqlite storage) on 127.0.0.1:$test_kafka_port"
}

stop_pid() { # name pidfile
    local name=$1 pidfile=$2 pid i
    if ! pid_alive "$pidfile"; then rm -f "$pidfile"; say "$name is not running"; return; fi
    pid=$(cat "$pidfile")
    say "stopping $name (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return; }
        sleep 0.2
    done
    say "$name did not stop within 30s; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

status() {
    local rc=0
    if kafka_answers; then say "Kafka:      up   127.0.0.1:$kafka_port ($(port_owner $kafka_port))"
    else say "Kafka:      down"; rc=1; fi
    if clickhouse_answers; then say "ClickHouse: up   127.0.0.1:$ch_http_port ($(port_owner $ch_http_port))"
    else say "ClickHouse: down"; rc=1; fi
    return $rc
}

case ${1:-} in
    up)
        start_clickhouse
        start_kafka
        say "ready: Kafka 127.0.0.1:$kafka_port, ClickHouse http://127.0.0.1:$ch_http_port"
        ;;
    test-broker) start_test_kafka ;;
    down)
        stop_pid "test Tansu" "$state/tansu-test/tansu.pid"
        stop_pid Tansu "$state/tansu/tansu.pid"
        stop_pid ClickHouse "$state/clickhouse/clickhouse.pid"
        ;;
    status) status ;;
    *) die "usage: $0 up|down|status|test-broker" ;;
esac
