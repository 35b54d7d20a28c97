# sigstage: `make run` and `make test` do all the set-up a fresh machine needs.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
STATE ?= .state

.PHONY: run test stack-up stack-down stack-status build release lint bench bench-load bench-stream bench-sink bench-sink-cluster bench-import bench-tracking bench-analyst bench-soak bench-overflow bench-latency bench-apply

## run: install what is missing, start Apache Kafka and ClickHouse, migrate, run every role on 127.0.0.1:8080
## (the console is on http://127.0.0.1:8081/console; sign in with the token in .state/admin-token, made once)
run: stack-up release
	target/release/sigstage migrate
	@test -s $(STATE)/admin-token || (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > $(STATE)/admin-token)
	@echo "console: sign in with the admin token in $(STATE)/admin-token (or set SIGSTAGE_ADMIN_TOKEN)"
	SIGSTAGE_ADMIN_TOKEN="$${SIGSTAGE_ADMIN_TOKEN:-$$(cat $(STATE)/admin-token)}" exec target/release/sigstage run --demo-key-file $(STATE)/demo-api-key

## test: the same set-up, then every test (unit, integration against the real stack, benches once)
## (tests use a broker of their own on 9093, emptied every run; `make run`'s data stays on 9092)
test:
	scripts/check-docker.sh
	@scripts/stack.sh test-stack
	cargo fmt --all -- --check
	scripts/chdb/check.sh
	scripts/sdk-clients.sh
	scripts/browser.sh
	SIGSTAGE_KAFKA_BROKERS=127.0.0.1:9093 cargo test --workspace --all-targets --no-fail-fast

stack-up:
	@scripts/stack.sh up

stack-down:
	@scripts/stack.sh down

stack-status:
	@scripts/stack.sh status

build:
	cargo build --workspace

release:
	cargo build --release --bin sigstage

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bench:
	cargo bench --bench edge --bench stream --bench dedupe --bench auth

## bench-load: the load figures of the README (wrk against the edge and its baselines)
bench-load: stack-up
	scripts/bench/load.sh

## bench-stream: the end-to-end stream figure of the README (processor vs a bare consumer)
bench-stream: stack-up
	scripts/bench/stream.sh

## bench-latency: 202 to row at 200 timed signals/s beside 0, 5 000, 10 000 and 20 000 events/s of load
bench-latency: stack-up
	scripts/bench/latency.sh

## bench-apply: live 202-to-row latency alone and while a rule is applied to 1 000 000 stored signals
bench-apply: stack-up
	scripts/bench/apply.sh

## bench-overflow: a calm org's latency alone and beside a noisy org, overflow lane on and off
bench-overflow: stack-up
	scripts/bench/overflow.sh

## bench-sink: the sink figures of the README (inserts vs clickhouse-client, webhooks, latency)
bench-sink: stack-up
	scripts/bench/sink.sh

## bench-analyst: every analyst query over 100 M synthetic signals, beside the raw tables where a rollup answers (N=…)
bench-analyst: stack-up
	scripts/bench/analyst.sh

## bench-sink-cluster: the sink's insert rate on a 2x2 ClickHouse cluster beside one server, in one run
bench-sink-cluster: stack-up
	scripts/bench/sink-cluster.sh

## bench-tracking: /v1/batch beside bulk with the same Segment events (the Tracking API figure of the README)
bench-tracking: stack-up
	scripts/bench/tracking.sh

## bench-soak: the edge under stalled heads and trickled bodies beside the same load without them, in one run (10 min)
bench-soak: stack-up
	scripts/bench/soak.sh

## bench-import: the bulk import figure of the README (100 000 signals into make run's stack)
bench-import: stack-up
	scripts/bench/import.sh

## fuzz: every fuzz target of fuzz/ for FUZZ_SECONDS (60) each, on the stable toolchain (see fuzz/README.md);
## installs the pinned cargo-fuzz if missing; fails when any target crashes, leaks memory or hangs
CARGO_FUZZ_VERSION ?= 0.13.2
FUZZ_TARGETS ?= inspect body activity rules segment
FUZZ_SECONDS ?= 60
FUZZ_RSS_MB ?= 2048
FUZZ_MAX_LEN ?= 65536
FUZZ_TIMEOUT ?= 10
FUZZ_SANITIZER ?= address
.PHONY: fuzz
fuzz:
	@if [ "$$(cargo fuzz --version 2>/dev/null | head -n1)" != "cargo-fuzz $(CARGO_FUZZ_VERSION)" ]; then \
		cargo install cargo-fuzz --locked --version $(CARGO_FUZZ_VERSION); fi
	RUSTC_BOOTSTRAP=1 cargo fuzz build --fuzz-dir fuzz -s $(FUZZ_SANITIZER)
	@set -o pipefail; failed=""; \
	for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus-work/$$t fuzz/artifacts/$$t; \
		regressions=$$([ -d fuzz/regressions/$$t ] && echo fuzz/regressions/$$t); \
		echo "== fuzz $$t: $(FUZZ_SECONDS) s"; \
		RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz -s $(FUZZ_SANITIZER) $$t \
			fuzz/corpus-work/$$t fuzz/corpus/$$t $$regressions -- \
			-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=$(FUZZ_RSS_MB) -malloc_limit_mb=$(FUZZ_RSS_MB) \
			-max_len=$(FUZZ_MAX_LEN) -timeout=$(FUZZ_TIMEOUT) -print_final_stats=1 2>&1 \
			| tee fuzz/artifacts/$$t/fuzz.log || failed="$$failed $$t"; \
	done; \
	echo "== fuzz summary"; \
	for t in $(FUZZ_TARGETS); do \
		printf '%-10s %s\n' $$t "$$(grep -E '^Done [0-9]+ runs' fuzz/artifacts/$$t/fuzz.log || echo 'did not finish: see fuzz/artifacts/'$$t)"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed (inputs and logs in fuzz/artifacts/)"; exit 1; fi
