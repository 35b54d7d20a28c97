#!/usr/bin/env bash
# Checks the Docker path as far as it can be checked without a Docker engine:
#   1. the compose file validates (`docker compose config -q` when the Compose v2 plugin is
#      there, else `docker-compose config -q`, Debian's package, installed once if missing);
#   2. the Dockerfile's `FROM rust:X` is >= the workspace rust-version in Cargo.toml, and that
#      rust-version is >= every locked package a build compiles (from `cargo metadata --locked`).
#
#   scripts/check-docker.sh [compose-file [dockerfile]]
#       defaults: <repo>/docker-compose.yml and <repo>/Dockerfile; a test can pass broken copies.
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
# Runs from the file's folder so relative paths (build: .) resolve as `docker compose up` would.
if ! (cd "$(dirname "$compose")" && $validator -f "$compose" config -q) >"$tmp/compose.log" 2>&1; then
    cat "$tmp/compose.log" >&2
    hint=""
    if [[ $validator == docker-compose && $validator_version == 1.* ]]; then
        hint=" (validated with Compose v1 $validator_version; if the file uses a feature only Compose v2 knows, install the docker compose plugin and rerun: this script prefers it)"
    fi
    die "$compose is not a valid compose file: fix what $validator reports above$hint"
fi
say "ok: $(basename "$compose") validates with \`$validator config -q\` (Compose $validator_version) [$(elapsed "$t")]"

# --- 2. Rust versions -----------------------------------------------------------------------

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
