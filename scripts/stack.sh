#!/usr/bin/env bash
# The local stack sigstage runs against: Apache Kafka (KRaft, one node) on 127.0.0.1:9092 and
# ClickHouse on 127.0.0.1:8123 (HTTP) / 9000 (native). Installs what is missing, keeps every file
# under the state folder (default .state/ of this checkout), and is idempotent.
#
#   scripts/stack.sh up | down | status
#   scripts/stack.sh test-stack               ClickHouse, and an emptied broker on 127.0.0.1:9093 for tests
#                                             (and ZooKeeper's package, for the ClickHouse cluster tests)
#   scripts/stack.sh cluster [DIR [BASE]]     three brokers on BASE+1..3 (default .state/cluster, 9100)
#   scripts/stack.sh broker DIR PORT CONTROLLER_PORT    one broker of its own, data in DIR
#   scripts/stack.sh clickhouse-cluster [DIR [BASE]]
#                                             ZooKeeper on BASE and four ClickHouse servers (cluster
#                                             `sigstage`: two shards of two replicas), node N on BASE+10N
#                                             (HTTP), +1 (native), +2 (replication) (default
#                                             .state/clickhouse-cluster, 9300)
#   scripts/stack.sh stop DIR                 stop every server this script started under DIR
#   scripts/stack.sh kafka-libs               fetch Kafka's jars (done by the others when missing)
#
# Kafka's jars come from Maven Central (scripts/kafka/pom.xml), once per machine, into
# $STACK_CACHE_DIR (default ~/.cache/sigstage). Brokers are formatted on first start and keep
# their data: `make run` finds its topics after a restart; the test broker is emptied every run.
#
# STACK_STATE_DIR   where data, logs and pid files live (default: <repo>/.state)
# STACK_KAFKA_HEAP  JVM heap of the 9092 and 9093 brokers (default: 1g; cluster brokers get 512m)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
state=${STACK_STATE_DIR:-$repo/.state}
cache=${STACK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sigstage}
pom=$repo/scripts/kafka/pom.xml
kafka_version=$(sed -n 's|.*<kafka.version>\(.*\)</kafka.version>.*|\1|p' "$pom")
# Named by the pom's checksum, so a changed pom fetches again.
kafka_libs=$cache/kafka-$kafka_version-$(sha256sum "$pom" | cut -c1-12)
kafka_heap=${STACK_KAFKA_HEAP:-1g}
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

# True when PIDFILE's process is alive and was started with TEXT in its command line (so it is
# the server this script started, not a reused pid), whether it answers yet or not.
ours() { # pidfile text
    pid_alive "$1" && grep -qF "$2" "/proc/$(cat "$1")/cmdline" 2>/dev/null
}

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

apt_install() { # package...
    command -v apt-get >/dev/null || die "$* missing and there is no apt-get; install them by hand"
    say "installing Debian's $* (once per machine)"
    export DEBIAN_FRONTEND=noninteractive
    local sudo=""
    [[ $(id -u) == 0 ]] || sudo=sudo
    $sudo apt-get update -q >/dev/null || die "apt-get update failed; are Debian's mirrors reachable?"
    # A package's postinst may try to start a system service; we never use it.
    $sudo apt-get install -y -q "$@" >/dev/null || die "apt-get install $* failed"
}

install_clickhouse() {
    if command -v clickhouse-server >/dev/null && command -v clickhouse-client >/dev/null; then return; fi
    apt_install clickhouse-server clickhouse-client
}

# Kafka's broker and runtime jars, from Maven Central, into the cache (about 45 MB).
install_kafka() {
    [[ -f $kafka_libs/.complete ]] && return
    command -v java >/dev/null || apt_install default-jre-headless
    command -v mvn >/dev/null || apt_install maven
    say "fetching Apache Kafka $kafka_version from Maven Central into $kafka_libs (once per machine)"
    local tmp=$kafka_libs.partial
    rm -rf "$tmp"
    mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >&2 \
        || die "mvn could not fetch Kafka's jars (output above); is Maven Central reachable?"
    touch "$tmp/.complete"
    rm -rf "$kafka_libs"
    mv "$tmp" "$kafka_libs"
}

# --- Kafka brokers ------------------------------------------------------------------------

# A Kafka cluster id: 16 random bytes, base64url without padding (what `kafka-storage.sh
# random-uuid` prints), without starting a JVM for it. Like Kafka's own, never one that starts
# with '-': the format command would take it for an option (1 start in 64 failed so).
new_cluster_id() {
    local id
    while id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'); [[ $id == -* ]]; do :; done
    printf '%s' "$id"
}

# start_broker DIR NODE_ID PORT CONTROLLER_PORT VOTERS REPLICAS MIN_ISR HEAP CLUSTER_ID
# One KRaft node (broker and controller) with its config, log4j config, logs and data in DIR.
# Formats DIR on first start only, so data outlives restarts.
start_broker() {
    local dir=$1 node=$2 port=$3 cport=$4 voters=$5 replicas=$6 min_isr=$7 heap=$8 cluster_id=$9
    local pidfile=$dir/kafka.pid log=$dir/logs/server.log owner
    mkdir -p "$dir/logs"
    # A node whose JVM still runs is left to answer in its own time (the caller awaits it): a busy
    # node that is slow to answer is not a stranger on its port.
    if ours "$pidfile" "$dir/server.properties"; then say "Kafka already running on $port (pid $(cat "$pidfile"))"; return; fi
    if kafka_answers "$port"; then say "a Kafka broker already answers on 127.0.0.1:$port ($(port_owner "$port")); using it"; return; fi
    for p in $port $cport; do
        owner=$(port_owner "$p")
        [[ -z $owner ]] || die "port $p is taken by $owner, which is not this broker; stop it and retry"
    done
    install_kafka
    cat >"$dir/server.properties" <<EOF
# Written by scripts/stack.sh at every start; edit the script, not this file.
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
# sigstage creates its own topics with its own settings; a typo must not create one.
auto.create.topics.enable=false
num.partitions=4
default.replication.factor=$replicas
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$replicas
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$min_isr
# A consumer group forms as soon as its first member joins (tests start many groups).
group.initial.rebalance.delay.ms=0
# sigstage writes records up to 4 MiB (topics say so too); the broker's own limit follows.
message.max.bytes=4194404
replica.fetch.max.bytes=4194404
EOF
    cat >"$dir/log4j2.properties" <<EOF
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = $log
appender.file.filePattern = $log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.state.name = state.change.logger
logger.state.level = warn
EOF
    local java=(java "-Xms256m" "-Xmx$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
        "-Dlog4j2.configurationFile=$dir/log4j2.properties" "-Dkafka.logs.dir=$dir/logs" -cp "$kafka_libs/*")
    if [[ ! -f $dir/data/meta.properties ]]; then
        "${java[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" \
            >"$dir/logs/format.log" 2>&1 || { cat "$dir/logs/format.log" >&2; die "formatting $dir/data failed"; }
    fi
    say "starting Kafka $kafka_version node $node on 127.0.0.1:$port (data and logs in $dir)"
    # exec, so the recorded pid is the JVM itself, leader of its own session.
    (cd "$dir" && exec setsid nohup "${java[@]}" kafka.Kafka "$dir/server.properties" \
        >"$dir/logs/stdout.log" 2>&1 </dev/null) &
    echo $! >"$pidfile"
}

await_broker() { # dir port
    wait_for "Kafka on $2" 90 "kafka_answers $2" "$1/logs/server.log" || die "Kafka on $2 failed to start"
}

single_broker() { # dir port controller_port heap
    local id_file=$1/cluster-id
    mkdir -p "$1"
    [[ -f $id_file ]] || new_cluster_id >"$id_file"
    start_broker "$1" 1 "$2" "$3" "1@127.0.0.1:$3" 1 1 "$4" "$(cat "$id_file")"
    await_broker "$1" "$2"
}

# Three nodes, each broker and controller, replication 3 and min.insync.replicas 2 by default:
# the smallest cluster that keeps accepting writes with one broker lost.
cluster() { # dir base_port
    local dir=$1 base=$2 voters="" i
    mkdir -p "$dir"
    [[ -f $dir/cluster-id ]] || new_cluster_id >"$dir/cluster-id"
    for i in 1 2 3; do voters+="${voters:+,}$i@127.0.0.1:$((base + 10 + i))"; done
    for i in 1 2 3; do
        start_broker "$dir/node-$i" "$i" $((base + i)) $((base + 10 + i)) "$voters" 3 2 512m "$(cat "$dir/cluster-id")"
    done
    for i in 1 2 3; do await_broker "$dir/node-$i" $((base + i)); done
    say "cluster ready: 127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2)),127.0.0.1:$((base + 3))"
}

# --- ClickHouse ---------------------------------------------------------------------------

start_clickhouse() {
    local dir=$state/clickhouse pidfile=$state/clickhouse/clickhouse.pid owner
    mkdir -p "$dir/log" "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas"
    # Ours while its recorded process is clickhouse-server, answering or not (yet): await_clickhouse waits.
    if ours "$pidfile" "$dir/config.xml"; then
        say "ClickHouse already running (pid $(cat "$pidfile"))"
        return
    fi
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
}

await_clickhouse() {
    wait_for ClickHouse 60 clickhouse_answers "$state/clickhouse/log/clickhouse-server.err.log" || die "ClickHouse failed to start"
}

# --- the ClickHouse cluster ---------------------------------------------------------------

install_zookeeper() {
    [[ -f /usr/share/java/zookeeper.jar && -f /usr/share/java/slf4j-simple.jar ]] && return
    command -v java >/dev/null || apt_install default-jre-headless
    apt_install zookeeper libslf4j-java
}

# Serving sessions: `ruok` answers before that, and a ClickHouse server that finds no session at
# start-up exits or hangs.
zookeeper_answers() { # port
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && printf srvr >&3 && cat <&3" 2>/dev/null | grep -q '^Mode: standalone'
}

# Debian's ZooKeeper 3.8, standalone, with its config, data and logs in DIR.
start_zookeeper() { # dir port
    local dir=$1 port=$2 pidfile=$1/zookeeper.pid owner
    mkdir -p "$dir/conf" "$dir/data" "$dir/logs"
    if ours "$pidfile" "$dir/conf/zoo.cfg"; then return; fi
    owner=$(port_owner "$port")
    [[ -z $owner ]] || die "port $port (ZooKeeper) is taken by $owner; stop it or give another BASE"
    install_zookeeper
    cat >"$dir/conf/zoo.cfg" <<EOF
# Written by scripts/stack.sh: the local ClickHouse cluster's ZooKeeper.
tickTime=2000
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,stat,srvr,mntr
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
EOF
    say "starting ZooKeeper on 127.0.0.1:$port (data and logs in $dir)"
    (cd "$dir" && exec setsid nohup java -Xms64m -Xmx256m -XX:+UseSerialGC -Djava.awt.headless=true \
        -cp "$dir/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar" \
        org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/conf/zoo.cfg" >"$dir/logs/zookeeper.log" 2>&1 </dev/null) &
    echo $! >"$pidfile"
}

# Answers, and sees ZooKeeper.
clickhouse_node_answers() { # http_port
    curl -fsS --max-time 3 "http://127.0.0.1:$1/" --data-binary "SELECT count() FROM system.zookeeper WHERE path = '/'" \
        >/dev/null 2>&1
}

# Node N (1-4) of the cluster on BASE: the local server's config with its own ports and paths, and
# config.d/cluster.xml (shard (N+1)/2, replica nodeN).
start_clickhouse_node() { # dir node base
    local dir=$1 n=$2 base=$3 http=$(($3 + 10 * $2)) pidfile=$1/clickhouse.pid owner port
    mkdir -p "$dir/log" "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas" "$dir/config.d"
    if ours "$pidfile" "$dir/config.xml"; then return; fi
    for port in $http $((http + 1)) $((http + 2)); do
        owner=$(port_owner "$port")
        [[ -z $owner ]] || die "port $port (ClickHouse node $n) is taken by $owner; stop it or give another BASE"
    done
    sed -e "s|@STATE@|$dir|g" -e "s|<http_port>8123</http_port>|<http_port>$http</http_port>|" \
        -e "s|<tcp_port>9000</tcp_port>|<tcp_port>$((http + 1))</tcp_port>|" "$repo/scripts/clickhouse/config.xml" >"$dir/config.xml"
    sed -e "s|@INTERSERVER@|$((http + 2))|" -e "s|@ZOOKEEPER@|$base|" -e "s|@SHARD@|$(((n + 1) / 2))|" \
        -e "s|@REPLICA@|node$n|" -e "s|@NATIVE1@|$((base + 11))|" -e "s|@NATIVE2@|$((base + 21))|" \
        -e "s|@NATIVE3@|$((base + 31))|" -e "s|@NATIVE4@|$((base + 41))|" "$repo/scripts/clickhouse/cluster.xml" \
        >"$dir/config.d/cluster.xml"
    cp "$repo/scripts/clickhouse/users.xml" "$dir/users.xml"
    (cd "$dir" && exec setsid nohup clickhouse-server --config-file="$dir/config.xml" \
        >"$dir/log/stdout.log" 2>&1 </dev/null) &
    echo $! >"$pidfile"
}

# ZooKeeper, then four ClickHouse servers started together; each awaited until it answers and
# sees ZooKeeper. Servers already running are kept (a killed one is started again).
clickhouse_cluster() { # dir base
    local dir=$1 base=$2 n
    install_clickhouse
    start_zookeeper "$dir/zookeeper" "$base"
    wait_for "ZooKeeper on $base" 60 "zookeeper_answers $base" "$dir/zookeeper/logs/zookeeper.log" \
        || die "ZooKeeper failed to start"
    for n in 1 2 3 4; do start_clickhouse_node "$dir/node-$n" "$n" "$base"; done
    for n in 1 2 3 4; do
        wait_for "ClickHouse node $n" 60 "clickhouse_node_answers $((base + 10 * n))" \
            "$dir/node-$n/log/clickhouse-server.err.log" || die "ClickHouse node $n failed to start"
    done
    say "ClickHouse cluster sigstage ready: nodes on http://127.0.0.1:$((base + 10)), :$((base + 20)), :$((base + 30)), :$((base + 40)); ZooKeeper 127.0.0.1:$base"
}

# --- stop ---------------------------------------------------------------------------------

stop_pid() { # name pidfile
    local name=$1 pidfile=$2 pid i
    if ! pid_alive "$pidfile"; then rm -f "$pidfile"; return; fi
    pid=$(cat "$pidfile")
    say "stopping $name (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return; }
        sleep 0.2
    done
    say "$name did not stop within 30s; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    # Gone once `kill -0` fails, so its ports are free for whatever starts next.
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null && sleep 0.2 || break; done
    rm -f "$pidfile"
}

# Every server of NAME (pid file FILE) under DIR, stopped together (a cluster node waits for its
# peers while they stop).
stop_all() { # dir file name
    local pidfile stopping=()
    [[ -d $1 ]] || return 0
    while IFS= read -r pidfile; do
        stop_pid "$3 $(dirname "$pidfile")" "$pidfile" &
        stopping+=($!)
    done < <(find "$1" -name "$2" 2>/dev/null)
    # Only these: a server this script started is a child too, and must not be waited for.
    for pid in "${stopping[@]}"; do wait "$pid"; done
}

stop_brokers() { stop_all "$1" kafka.pid Kafka; }

# Every server this script started under DIR: brokers and ClickHouse servers, then ZooKeeper.
stop_under() { # dir
    stop_all "$1" kafka.pid Kafka
    stop_all "$1" clickhouse.pid ClickHouse
    stop_all "$1" zookeeper.pid ZooKeeper
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
        single_broker "$state/kafka" $kafka_port 9192 "$kafka_heap"
        await_clickhouse
        say "ready: Kafka 127.0.0.1:$kafka_port, ClickHouse http://127.0.0.1:$ch_http_port"
        ;;
    test-stack)
        install_zookeeper # for the ClickHouse cluster tests, which start a cluster of their own
        start_clickhouse
        stop_brokers "$state/kafka-test"
        rm -rf "$state/kafka-test"
        owner=$(port_owner $test_kafka_port)
        [[ -z $owner ]] || die "port $test_kafka_port (the test broker) is taken by $owner (another clone's stack? run scripts/stack.sh down there)"
        single_broker "$state/kafka-test" $test_kafka_port 9193 "$kafka_heap"
        await_clickhouse
        say "ready for tests: Kafka 127.0.0.1:$test_kafka_port (empty), ClickHouse http://127.0.0.1:$ch_http_port"
        ;;
    cluster) cluster "${2:-$state/cluster}" "${3:-9100}" ;;
    clickhouse-cluster) clickhouse_cluster "${2:-$state/clickhouse-cluster}" "${3:-9300}" ;;
    broker)
        [[ $# == 4 ]] || die "usage: $0 broker DIR PORT CONTROLLER_PORT"
        single_broker "$2" "$3" "$4" 512m
        ;;
    stop)
        [[ $# == 2 ]] || die "usage: $0 stop DIR"
        stop_under "$2"
        ;;
    kafka-libs) install_kafka; echo "$kafka_libs" ;;
    down) stop_under "$state" ;;
    status) status ;;
    *) die "usage: $0 up|down|status|test-stack|cluster [DIR [BASE]]|clickhouse-cluster [DIR [BASE]]|broker DIR PORT CONTROLLER_PORT|stop DIR|kafka-libs" ;;
esac
