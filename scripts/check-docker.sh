#!/usr/bin/env bash
# Checks the Docker path as far as it can be checked without a Docker engine:
#   1. the compose file validates, by default and with `--profile cluster` (`docker compose
#      config -q` when the Compose v2 plugin is there, else `docker-compose config -q`, Debian's
#      package, installed once if missing);
#   2. the cluster profile, as Compose resolves it: every file a cluster service mounts exists,
#      and each XML one is well-formed; three ClickHouse Keeper services, each with the raft of
#      all three and its own server_id; four ClickHouse servers whose macros are distinct
#      (shard, replica) pairs making two shards of two; their remote_servers entry for the
#      cluster the roles name (SIGSTAGE_CLICKHOUSE_CLUSTER) lists exactly those four by service
#      name, internal_replication on, a shard's replicas sharing their shard macro; their
#      <zookeeper> names the three keepers; the cluster roles point at one of the servers and
#      have a topic prefix of their own; no host port is published twice;
#   3. the Dockerfile's `FROM rust:X` is >= the workspace rust-version in Cargo.toml, and that
#      rust-version is >= every locked package a build compiles (from `cargo metadata --locked`).
#
#   scripts/check-docker.sh [compose-file [dockerfile]]
#       defaults: <repo>/docker-compose.yml and <repo>/Dockerfile; a test can pass broken copies
#       (mounts resolve from the compose file's folder: copy scripts/clickhouse/compose/ beside it).
#
# CHECK_DOCKER_TARGETS  platforms whose dependency graph counts (default: Linux amd64/arm64,
#                       what the image is built for, plus macOS and Windows, which the
#                       workspace rust-version also promises).
# Exits non-zero, saying what to change, when a check fails.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
compose=${1:-$repo/docker-compose.yml}
dockerfile=${2:-$repo/Dockerfile}
manifest=$repo/Cargo.toml
targets=${CHECK_DOCKER_TARGETS:-x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-apple-darwin aarch64-apple-darwin x86_64-pc-windows-msvc}
export PATH=$HOME/.cargo/bin:$PATH

say() { printf 'check-docker: %s\n' "$*" >&2; }
die() { printf 'check-docker: FAILED: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

[[ -f $compose ]] || die "compose file $compose does not exist"
[[ -f $dockerfile ]] || die "Dockerfile $dockerfile does not exist"
compose=$(cd "$(dirname "$compose")" && pwd)/$(basename "$compose")
command -v python3 >/dev/null || die "python3 is not on PATH; install it (apt-get install python3)"
command -v cargo >/dev/null || die "cargo is not on PATH; install Rust (rustup) first"
started=$(now)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- 1. compose file ----------------------------------------------------------------------

# Prints the command that validates a compose file: the v2 plugin if present (`config` reads
# files only and needs no daemon), else a standalone docker-compose, installed from Debian.
compose_validator() {
    if command -v docker >/dev/null && docker compose version >/dev/null 2>&1; then
        echo "docker compose"
        return
    fi
    if ! command -v docker-compose >/dev/null; then
        command -v apt-get >/dev/null \
            || die "no Compose to validate with: install the docker compose plugin or docker-compose"
        say "installing Debian's docker-compose (once per machine; the Compose v2 plugin is not installed)"
        export DEBIAN_FRONTEND=noninteractive
        local sudo=""
        [[ $(id -u) == 0 ]] || sudo=sudo
        $sudo apt-get update -q >"$tmp/apt.log" 2>&1 \
            || { cat "$tmp/apt.log" >&2; die "apt-get update failed; are Debian's mirrors reachable?"; }
        # --no-install-recommends: the package recommends docker.io (an engine), not needed here.
        $sudo apt-get install -y -q --no-install-recommends docker-compose >"$tmp/apt.log" 2>&1 \
            || { cat "$tmp/apt.log" >&2; die "apt-get install docker-compose failed (see above)"; }
    fi
    echo "docker-compose"
}

t=$(now)
validator=$(compose_validator)
validator_version=$($validator version --short 2>/dev/null || echo unknown)
# Runs from the file's folder so relative paths (build: ., ./scripts/...) resolve as
# `docker compose up` would. Profiles: none (the default stack), then cluster.
for profile in "" cluster; do
    args=()
    [[ -n $profile ]] && args=(--profile "$profile")
    if ! (cd "$(dirname "$compose")" && $validator "${args[@]}" -f "$compose" config -q) >"$tmp/compose.log" 2>&1; then
        cat "$tmp/compose.log" >&2
        hint=""
        if [[ $validator == docker-compose && $validator_version == 1.* ]]; then
            hint=" (validated with Compose v1 $validator_version; if the file uses a feature only Compose v2 knows, install the docker compose plugin and rerun: this script prefers it)"
        fi
        die "$compose is not a valid compose file${profile:+ with --profile $profile}: fix what $validator reports above$hint"
    fi
done
say "ok: $(basename "$compose") validates with \`$validator config -q\`, by default and with --profile cluster (Compose $validator_version) [$(elapsed "$t")]"

# --- 2. the cluster profile -----------------------------------------------------------------

t=$(now)
# What Compose resolves (anchors merged, paths absolute): JSON from the v2 plugin; YAML from v1,
# read with PyYAML (python3's, else that of the Python docker-compose v1 runs on).
format=yaml
if [[ $validator == "docker compose" ]] \
    && (cd "$(dirname "$compose")" && docker compose --profile cluster -f "$compose" config --format json) \
        >"$tmp/resolved" 2>"$tmp/compose.log"; then
    format=json
fi
reader=python3
if [[ $format == yaml ]]; then
    (cd "$(dirname "$compose")" && $validator --profile cluster -f "$compose" config) >"$tmp/resolved" 2>"$tmp/compose.log" \
        || { cat "$tmp/compose.log" >&2; die "\`$validator --profile cluster config\` failed (see above)"; }
    reader=""
    v1=$(command -v docker-compose || true)
    for candidate in python3 "$([[ -n $v1 ]] && sed -n '1s/^#! *//p' "$v1")"; do
        if [[ -n $candidate ]] && $candidate -c 'import yaml' 2>/dev/null; then reader=$candidate; break; fi
    done
    [[ -n $reader ]] || die "no Python with PyYAML to read what \`$validator config\` resolves: apt-get install python3-yaml (or pip install pyyaml)"
fi
$reader - "$tmp/resolved" "$format" "$(dirname "$compose")" <<'PY'
import json, os, sys
import xml.etree.ElementTree as ET

resolved, fmt, folder = sys.argv[1:4]
if fmt == "json":
    config = json.load(open(resolved))
else:
    import yaml
    config = yaml.safe_load(open(resolved))
services = config.get("services") or {}
problems = []


def fail(msg):
    problems.append(msg)


def done():
    """Stops, listing every problem found so far, if there is one."""
    if problems:
        print("check-docker: FAILED: the cluster profile of the compose file:\n"
              + "\n".join(f"  - {p}" for p in problems), file=sys.stderr)
        sys.exit(1)


def show(path):
    return os.path.relpath(path, folder)


def env(service):
    value = services[service].get("environment") or {}
    if isinstance(value, list):  # KEY=VALUE strings
        value = dict(item.split("=", 1) if "=" in item else (item, "") for item in value)
    return {k: "" if v is None else str(v) for k, v in value.items()}


def image(service):
    return str(services[service].get("image") or "")


def binds(service):
    """(source, target) of each bind mount, in either syntax Compose resolves to."""
    out = []
    for volume in services[service].get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                out.append((os.path.join(folder, volume["source"]), volume["target"]))
        else:
            parts = str(volume).split(":")
            if len(parts) >= 2 and parts[0].startswith(("/", ".", "~")):
                out.append((os.path.join(folder, os.path.expanduser(parts[0])), parts[1]))
    return out


def text(node, path):
    found = node.find(path)
    return None if found is None or found.text is None else found.text.strip()


in_cluster = {name for name, s in services.items() if "cluster" in (s.get("profiles") or [])}
keepers = sorted(n for n in services if image(n).startswith("clickhouse/clickhouse-keeper"))
servers = sorted(n for n in in_cluster if image(n).startswith("clickhouse/clickhouse-server"))
roles = sorted(n for n in services if env(n).get("SIGSTAGE_CLICKHOUSE_CLUSTER"))
default_roles = sorted(n for n in services if n not in in_cluster and "SIGSTAGE_KAFKA_BROKERS" in env(n))

for name in sorted(set(keepers + roles) - in_cluster):
    fail(f"service {name} is not in the cluster profile: add `profiles: [cluster]` to it, or the default "
         f"`docker compose up` starts it too")
if len(keepers) != 3:
    fail(f"{len(keepers)} ClickHouse Keeper service(s) ({', '.join(keepers) or 'none'}); the cluster profile "
         f"needs 3 (image clickhouse/clickhouse-keeper), to keep a quorum with one lost")
if len(servers) != 4:
    fail(f"{len(servers)} ClickHouse server(s) in the cluster profile ({', '.join(servers) or 'none'}); it "
         f"needs 4 (image clickhouse/clickhouse-server, profiles: [cluster]): two shards of two replicas")
if not roles:
    fail("no service sets SIGSTAGE_CLICKHOUSE_CLUSTER: give the cluster roles (migrate-cluster, "
         "ingest-cluster, stream-cluster, sink-cluster) SIGSTAGE_CLICKHOUSE_CLUSTER: sigstage")
done()

# Every file a cluster service mounts: there (else Docker makes an empty directory in its place
# and the server does not start) and, for XML, well-formed.
parsed, mounters = {}, {}
for name in sorted(in_cluster):
    for source, target in binds(name):
        mounters.setdefault(source, []).append(name)
        if not os.path.exists(source):
            fail(f"{name} mounts {show(source)} at {target}, which does not exist: create it, or fix the "
                 f"path in the compose file (relative to {folder})")
        elif os.path.isdir(source):
            fail(f"{name} mounts {show(source)} at {target}, a directory: mount the config file itself")
for source, names in sorted(mounters.items()):
    if source.endswith(".xml") and os.path.isfile(source):
        try:
            parsed[source] = ET.parse(source).getroot()
        except ET.ParseError as error:
            fail(f"{show(source)} (mounted by {', '.join(names)}) is not well-formed XML: {error}; fix it")
done()


def mounted(name, under):
    return [(source, parsed[source]) for source, target in binds(name)
            if target.startswith(under) and source in parsed]


# Keepers: each mounts its keeper_config.xml, with the raft of all three and its own server_id.
keeper_port = {}
for name in keepers:
    configs = mounted(name, "/etc/clickhouse-keeper/")
    if len(configs) != 1:
        fail(f"{name} mounts {len(configs)} XML file(s) under /etc/clickhouse-keeper/; mount one, as "
             f"/etc/clickhouse-keeper/keeper_config.xml (scripts/clickhouse/compose/{name}.xml)")
        continue
    source, root = configs[0]
    raft = root.findall("keeper_server/raft_configuration/server")
    hosts = [text(server, "hostname") for server in raft]
    ids = [text(server, "id") for server in raft]
    if sorted(h or "" for h in hosts) != keepers:
        missing = sorted(set(keepers) - set(hosts))
        fail(f"{show(source)} ({name}): keeper_server/raft_configuration lists {hosts}"
             + (f", not {', '.join(missing)}" if missing else "")
             + f"; list exactly the keeper services {keepers}, each once, by service name")
    if None in ids or len(set(ids)) != len(ids):
        fail(f"{show(source)} ({name}): the raft_configuration server ids {ids} are not distinct; give each "
             f"keeper its own <id>")
    own = [text(server, "id") for server in raft if text(server, "hostname") == name]
    server_id = text(root, "keeper_server/server_id")
    if own and server_id != own[0]:
        fail(f"{show(source)} ({name}): server_id is {server_id}, but the raft entry of {name} has id {own[0]}; "
             f"set <server_id>{own[0]}</server_id>")
    keeper_port[name] = text(root, "keeper_server/tcp_port")
    if not keeper_port[name]:
        fail(f"{show(source)} ({name}): no keeper_server/tcp_port; set it (9181), the port the servers' "
             f"<zookeeper> reaches")

# Servers: what their config.d files set.
cluster_names = sorted({env(n)["SIGSTAGE_CLICKHOUSE_CLUSTER"] for n in roles})
if len(cluster_names) != 1:
    fail(f"the cluster roles name different clusters {cluster_names} in SIGSTAGE_CLICKHOUSE_CLUSTER; use one")
cluster_name = cluster_names[0]


def one(name, path, what):
    """(file, value) of what exactly one of the server's config files sets."""
    values = [(source, text(root, path)) for source, root in mounted(name, "/etc/clickhouse-server/")
              if root.find(path) is not None]
    if len(values) != 1:
        where = ", ".join(show(s) for s, _ in values) or "none of the files it mounts"
        fail(f"{name}: {what} ({path}) is set in {where}; set it in exactly one file mounted under "
             f"/etc/clickhouse-server/config.d/")
        return None, None
    return values[0]


macros = {}
for name in servers:
    _, shard = one(name, "macros/shard", "its shard macro")
    _, replica = one(name, "macros/replica", "its replica macro")
    if shard and replica:
        macros[name] = (shard, replica)
by_pair, by_name = {}, {}
for name, (shard, replica) in macros.items():
    by_pair.setdefault((shard, replica), []).append(name)
    by_name.setdefault(f"{shard}-{replica}", set()).add((shard, replica))
for (shard, replica), names in sorted(by_pair.items()):
    if len(names) > 1:
        fail(f"{' and '.join(names)} have the same macros (shard {shard}, replica {replica}): each server's "
             f"(shard, replica) must be its own, they name its replicas in the keeper; change one's macros file")
for joined, pairs in sorted(by_name.items()):
    if len(pairs) > 1:
        fail(f"macros {sorted(pairs)} all make '{{shard}}-{{replica}}' = {joined}, the replica name of the "
             f"tables on every node; choose macros that do not run together")
shards = {}
for shard, replica in macros.values():
    shards.setdefault(shard, set()).add(replica)
if len(macros) == 4 and (len(shards) != 2 or any(len(r) != 2 for r in shards.values())):
    fail(f"the servers' macros make shards {({k: sorted(v) for k, v in sorted(shards.items())})}; the cluster "
         f"profile is two shards of two replicas: give two servers shard 1 (replicas 1 and 2), two shard 2")

layouts = {}
for name in servers:
    source, _ = one(name, "remote_servers", "remote_servers")
    if not source:
        continue
    root = parsed[source]
    cluster = root.find(f"remote_servers/{cluster_name}")
    if cluster is None:
        fail(f"{show(source)} ({name}): no remote_servers/{cluster_name}, the cluster the roles' "
             f"SIGSTAGE_CLICKHOUSE_CLUSTER names; define it (or change SIGSTAGE_CLICKHOUSE_CLUSTER)")
        continue
    layout = [[(text(r, "host"), text(r, "port")) for r in shard.findall("replica")]
              for shard in cluster.findall("shard")]
    layouts.setdefault(json.dumps(layout), []).append(name)
    if len(layouts) > 1 or layouts[json.dumps(layout)][0] != name:
        continue  # one report per distinct definition
    hosts = [host for shard in layout for host, _ in shard]
    if sorted(h or "" for h in hosts) != servers:
        fail(f"{show(source)}: remote_servers/{cluster_name} lists {hosts}; list exactly the four servers "
             f"{servers}, each once, by compose service name")
    shard_macros = []
    for n, shard in enumerate(cluster.findall("shard"), 1):
        members = [h for h, _ in layout[n - 1]]
        if text(shard, "internal_replication") != "true":
            fail(f"{show(source)}: shard {n} of remote_servers/{cluster_name} lacks "
                 f"<internal_replication>true</internal_replication>: without it a Distributed insert "
                 f"writes each replica itself, on top of the replication")
        if any(port != "9000" for _, port in layout[n - 1]):
            fail(f"{show(source)}: shard {n} of remote_servers/{cluster_name} names ports "
                 f"{[p for _, p in layout[n - 1]]}; the servers answer the native protocol on 9000")
        seen = sorted({macros[h][0] for h in members if h in macros})
        if len(seen) > 1:
            fail(f"{show(source)}: shard {n} of remote_servers/{cluster_name} holds {members}, whose shard "
                 f"macros differ ({seen}): put servers of one shard macro in one <shard>")
        shard_macros += seen
    if len(shard_macros) != len(set(shard_macros)):
        fail(f"{show(source)}: servers of one shard macro are in two shards of remote_servers/{cluster_name}; "
             f"put each shard's replicas in one <shard>")
    nodes = [(text(node, "host"), text(node, "port")) for s, r in mounted(name, "/etc/clickhouse-server/")
             for node in r.findall("zookeeper/node")]
    if sorted(h or "" for h, _ in nodes) != keepers:
        fail(f"{name}: <zookeeper> names {[h for h, _ in nodes]}; name the keeper services {keepers}, each once")
    for host, port in nodes:
        if keeper_port.get(host) and port != keeper_port[host]:
            fail(f"{name}: <zookeeper> reaches {host} on port {port}, but it serves on {keeper_port[host]} "
                 f"(its keeper_server/tcp_port); make them agree")
if len(layouts) > 1:
    fail(f"the servers see different remote_servers/{cluster_name} ({list(layouts.values())}); mount the "
         f"same cluster.xml on every server")

# The cluster roles: on a node of the cluster, with topics of their own.
default_prefixes = {env(n).get("SIGSTAGE_TOPIC_PREFIX", "sigstage.") for n in default_roles}
for name in roles:
    url = env(name).get("SIGSTAGE_CLICKHOUSE_URL", "")
    host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    if host not in servers:
        fail(f"{name}: SIGSTAGE_CLICKHOUSE_URL={url or '(unset)'} is not a server of the cluster; point it at "
             f"one of {servers} (http://clickhouse-s1r1:8123)")
    prefix = env(name).get("SIGSTAGE_TOPIC_PREFIX", "sigstage.")
    if prefix in default_prefixes:
        fail(f"{name}: SIGSTAGE_TOPIC_PREFIX={prefix} is the default stack's too, so their topics and consumer "
             f"groups would mix on the one broker; give the cluster roles their own (sigstage-cluster.)")

# Host ports: none published twice (the cluster profile runs beside the default stack).
published = {}
for name, service in services.items():
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            host_port = str(port.get("published") or "")
        else:
            parts = str(port).split(":")
            host_port = parts[-2] if len(parts) >= 2 else ""
        if host_port:
            published.setdefault(host_port, []).append(name)
for port, names in sorted(published.items()):
    if len(names) > 1:
        fail(f"host port {port} is published by {' and '.join(names)}, which then cannot run together; "
             f"change one")
done()
print(f"check-docker: ok: cluster profile: keepers {', '.join(keepers)} (one raft of three); servers "
      + ", ".join(f"{n} ({macros[n][0]},{macros[n][1]})" for n in servers)
      + f" in remote_servers/{cluster_name}; {len(parsed)} XML file(s) mounted, each well-formed; roles "
      + ", ".join(roles), file=sys.stderr)
PY
say "ok: cluster profile [$(elapsed "$t")]"

# --- 3. Rust versions -----------------------------------------------------------------------

t=$(now)
filters=()
for target in $targets; do filters+=(--filter-platform "$target"); done
if ! cargo metadata --format-version 1 --locked --manifest-path "$manifest" "${filters[@]}" \
    >"$tmp/built.json" 2>"$tmp/cargo.log"; then
    cat "$tmp/cargo.log" >&2
    die "cargo metadata --locked failed (see above); if Cargo.lock is out of date, run cargo update -w and commit Cargo.lock"
fi
# The whole lock graph, only to name packages that are locked but never compiled (see below).
cargo metadata --format-version 1 --locked --manifest-path "$manifest" >"$tmp/all.json" 2>"$tmp/cargo.log" \
    || { cat "$tmp/cargo.log" >&2; die "cargo metadata --locked failed (see above)"; }

python3 - "$manifest" "$dockerfile" "$tmp/built.json" "$tmp/all.json" "$targets" <<'EOF'
import json, re, sys

manifest, dockerfile, built_path, all_path, targets = sys.argv[1:6]
EDITION_MIN = {"2015": "1.0", "2018": "1.31", "2021": "1.56", "2024": "1.85"}

def ver(s):
    parts = [int(x) for x in s.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))

def show(v):
    return ".".join(map(str, v[:2] if v[2] == 0 else v))

def fail(msg):
    print(f"check-docker: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)

def requirement(p):
    """The oldest rustc that can compile package p: its rust-version, or its edition's."""
    need = ver(EDITION_MIN.get(p["edition"], "1.0"))
    why = f"edition {p['edition']}"
    if p.get("rust_version") and ver(p["rust_version"]) >= need:
        need, why = ver(p["rust_version"]), f"rust-version {p['rust_version']}"
    return need, why

try:
    import tomllib  # Python 3.11+
    with open(manifest, "rb") as f:
        declared = tomllib.load(f).get("workspace", {}).get("package", {}).get("rust-version")
except ImportError:  # older Python: the key inside the [workspace.package] table
    table = re.search(r"^\[workspace\.package\]\s*$(.*?)(?=^\[|\Z)", open(manifest).read(), re.M | re.S)
    m = table and re.search(r'^rust-version\s*=\s*"([^"]+)"', table.group(1), re.M)
    declared = m and m.group(1)
if not declared:
    fail(f'{manifest} has no [workspace.package] rust-version; add one (rust-version = "1.xx")')
ws = ver(declared)

built = json.load(open(built_path))
members = set(built["workspace_members"])
deps = [p for p in built["packages"] if p["id"] not in members]
reqs = sorted(((*requirement(p), p) for p in deps), key=lambda r: r[0], reverse=True)
need = reqs[0][0] if reqs else (1, 0, 0)
setters = [f"{p['name']} {p['version']}" for v, _, p in reqs if v == need]

# Workspace members: each must promise at least what its dependencies need (they inherit the
# workspace value unless they set their own).
low_members = [p for p in built["packages"]
               if p["id"] in members and p.get("rust_version") and ver(p["rust_version"]) < need]

too_new = [(v, why, p) for v, why, p in reqs if v > ws]
if too_new or ws < need:
    lines = "\n".join(f"    {p['name']} {p['version']}: {why}" for v, why, p in too_new)
    fail(f"Cargo.toml [workspace.package] rust-version = \"{declared}\", but {len(too_new)} locked "
         f"package(s) need a newer Rust:\n{lines}\n"
         f"  Set rust-version = \"{show(need)}\" in {manifest} (and FROM rust:{show(need)}-bookworm "
         f"in the Dockerfile), or pin the packages above to older versions in Cargo.lock "
         f"(cargo update -p <name> --precise <version>).")
if low_members:
    lines = "\n".join(f"    {p['name']}: rust-version {p['rust_version']}" for p in low_members)
    fail(f"workspace member(s) declare a rust-version older than their dependencies need "
         f"({show(need)}):\n{lines}\n  Use rust-version.workspace = true in their Cargo.toml.")

# Locked packages no build for these platforms compiles (platform- or cfg-gated, such as what
# left-right pulls in only under --cfg loom). Cargo checks rust-version only for what it compiles.
built_ids = {p["id"] for p in built["packages"]}
skipped = [(requirement(p)[0], p) for p in json.load(open(all_path))["packages"]
           if p["id"] not in built_ids]
skipped_newer = sorted((r for r in skipped if r[0] > ws), key=lambda r: r[0], reverse=True)
if skipped_newer:
    names = ", ".join(f"{p['name']} {p['version']} ({show(v)})" for v, p in skipped_newer)
    print(f"check-docker: note: ignored {len(skipped_newer)} locked package(s) newer than "
          f"{declared} that no build for [{targets}] compiles: {names}", file=sys.stderr)

# Dockerfile: every stage FROM rust:<tag> must provide at least the workspace rust-version.
froms = re.findall(r"^\s*FROM\s+(?:--platform=\S+\s+)?(?:docker\.io/)?(?:library/)?rust:(\S+)",
                   open(dockerfile).read(), re.MULTILINE | re.IGNORECASE)
if not froms:
    fail(f"{dockerfile} has no FROM rust:<version> stage; build on rust:{declared}-bookworm")
for tag in froms:
    m = re.match(r"^(\d+\.\d+(?:\.\d+)?)(-.*)?$", tag)
    if not m:
        fail(f"{dockerfile}: FROM rust:{tag} does not pin a Rust version; use FROM rust:{declared}-bookworm")
    if ver(m.group(1)) < ws:
        fail(f"{dockerfile}: FROM rust:{tag} is older than Cargo.toml's rust-version {declared}; "
             f"change it to FROM rust:{declared}{m.group(2) or '-bookworm'}")

print(f"check-docker: ok: workspace rust-version {declared} >= {show(need)}, the newest any of "
      f"{len(deps)} locked package(s) built for [{targets}] needs (set by {', '.join(setters)}); "
      f"Dockerfile FROM rust:{', rust:'.join(froms)} >= {declared}", file=sys.stderr)
EOF
say "ok: Rust versions [$(elapsed "$t")]"
say "all checks passed in $(elapsed "$started")"
