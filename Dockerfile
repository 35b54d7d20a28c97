# The sigstage binary, for docker-compose.yml. One image serves every role.
FROM rust:1.89-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --bin sigstage

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 sigstage
COPY --from=build /src/target/release/sigstage /usr/local/bin/sigstage
USER sigstage
ENV SIGSTAGE_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["sigstage"]
