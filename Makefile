# sigstage: `make run` and `make test` do all the set-up a fresh machine needs.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
STATE ?= .state

.PHONY: run test stack-up stack-down stack-status build release lint bench bench-load bench-stream bench-sink bench-import bench-tracking

## run: install what is missing, start Apache Kafka and ClickHouse, migrate, run every role on 127.0.0.1:8080
run: stack-up release
	target/release/sigstage migrate
	exec target/release/sigstage run --demo-key-file $(STATE)/demo-api-key

## test: the same set-up, then every test (unit, integration against the real stack, benches once)
## (tests use a broker of their own on 9093, emptied every run; `make run`'s data stays on 9092)
test:
	scripts/check-docker.sh
	@scripts/stack.sh test-stack
	cargo fmt --all -- --check
	scripts/chdb/check.sh
	scripts/sdk-clients.sh
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
	cargo bench --bench edge --bench stream --bench auth

## bench-load: the load figures of the README (wrk against the edge and its baselines)
bench-load: stack-up
	scripts/bench-load.sh

## bench-stream: the end-to-end stream figure of the README (processor vs a bare consumer)
bench-stream: stack-up
	scripts/bench-stream.sh

## bench-sink: the sink figures of the README (inserts vs clickhouse-client, webhooks, latency)
bench-sink: stack-up
	scripts/bench-sink.sh

## bench-tracking: /v1/batch beside bulk with the same Segment events (the Tracking API figure of the README)
bench-tracking: stack-up
	scripts/bench-tracking.sh

## bench-import: the bulk import figure of the README (100 000 signals into make run's stack)
bench-import: stack-up
	scripts/bench-import.sh
