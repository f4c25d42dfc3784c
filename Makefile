# The IoTeX elector. `make demo` shows it working; `make test` checks everything CI checks.
SHELL := /bin/bash
CARGO ?= cargo
APT_PACKAGES := protobuf-compiler libprotobuf-dev etcd-server etcd-client

.PHONY: all build test demo prereqs fmt lint unit clean

all: build

## prereqs: install what a fresh Debian machine lacks (as root), or say exactly what to install.
prereqs:
	@missing=""; \
	command -v protoc >/dev/null || missing="$$missing protobuf-compiler libprotobuf-dev"; \
	command -v etcd >/dev/null || missing="$$missing etcd-server"; \
	command -v etcdctl >/dev/null || missing="$$missing etcd-client"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing tools; run: sudo apt-get install -y$$missing" >&2; exit 1; \
	  fi; \
	fi
	@command -v cargo >/dev/null || { echo "cargo not found: install Rust 1.95+ (rustup)" >&2; exit 1; }

## build: the release binary at bin/elector, like the Go original's `make build`.
build: prereqs
	$(CARGO) build --release --locked -p elector
	@mkdir -p bin && cp target/release/elector bin/elector
	@echo "built bin/elector"

fmt:
	$(CARGO) fmt --all -- --check

lint: prereqs
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

unit: prereqs
	$(CARGO) test --locked --workspace

## test: formatting, lints and every test (unit, property, real etcd, simulation).
test: prereqs fmt lint unit

## demo: local etcd, three stand-in nodes, three electors; failover and handover, timed.
## DEMO_ARGS=--fast uses the 3 s lease profile.
demo: prereqs
	$(CARGO) build --release --locked -p elector -p elector-integration --bin elector --bin demo
	@mkdir -p bin && cp target/release/elector bin/elector
	target/release/demo --elector bin/elector $(DEMO_ARGS)

clean:
	$(CARGO) clean
	rm -rf bin
