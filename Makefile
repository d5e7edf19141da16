# ztui developer and CI entry points.  `make test` is what .ci/run executes.
SHELL := /bin/bash
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The stamp is newer than pyproject.toml once the venv has been installed from it; editing
# pyproject.toml makes it stale and `make venv` reinstalls.
STAMP  := $(VENV)/.installed

# tool:debian-package pairs needed by the system tests (tests/netns, the console's tmux
# test) and `ztui demo`; rsvg-convert is optional: `make screenshots` writes SVG only
# without it; tincd (tinc 1.0) is the anchor `make bench-overlay` compares ztui with, and
# ethtool turns UDP segmentation offload off there (so loss drops single datagrams).
SYSDEPS := ip:iproute2 iptables:iptables iperf3:iperf3 ping:iputils-ping tmux:tmux \
           conntrack:conntrack rsvg-convert:librsvg2-bin tincd:tinc ethtool:ethtool

.PHONY: venv sysdeps lint fmt test bench bench-core bench-overlay bench-console bench-hostile bench-nat demo screenshots fuzz

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	touch $(STAMP)

# Installs missing system tools with apt when root; a non-root run (a developer laptop)
# only notes it, and the tests that need those tools skip themselves.
sysdeps:
	@missing=""; \
	for pair in $(SYSDEPS); do \
	  tool=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$tool >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -z "$$missing" ]; then \
	  echo "sysdeps: all present"; \
	elif [ "$$EUID" != 0 ]; then \
	  echo "sysdeps: not root, skipping apt install of:$$missing (netns tests will skip)"; \
	else \
	  echo "sysdeps: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && \
	  apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy overlay_core console

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: venv sysdeps lint
	@seed=$${TEST_SEED:-$$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}; \
	echo "pytest in random order (modules, and tests within each), seed $$seed"; \
	$(BIN)/pytest -q --random-order-bucket=module --random-order-seed=$$seed || { \
	echo "failed with test order seed $$seed: make test TEST_SEED=$$seed replays it"; exit 1; }

# Benchmarks print numbers beside a baseline measured in the same run; they never fail on
# speed. Results are also written as JSON under bench/results/.
bench-core: venv
	$(BIN)/python bench/bench_core.py

# ztui beside tinc 1.0 (switch mode), the bare underlay and bare UDP on the same rig, in the
# same run: DIRECT and relayed, underlay MTU 1500 and 1280, 0% and 1% loss, and DIRECT-WHOLE
# (0%: UDP GSO batches crossing the routers whole) (~12 min on 2 cores).
# Needs root (namespaces, TAP, iptables) and iperf3; otherwise it says why and exits 0;
# without tincd it measures the rest. BENCH_OVERLAY_ARGS: e.g. --mtu 1500 --loss 0
# --paths direct --impl tinc ztui --seconds 10 --cc cubic (TCP congestion control; default: the host's)
BENCH_OVERLAY_ARGS ?=
bench-overlay: venv
	$(BIN)/python bench/bench_overlay.py $(BENCH_OVERLAY_ARGS)

# The console's own cost on a fake node with 500 peers and 200 members.
bench-console: venv
	$(BIN)/python bench/bench_console.py

# A root and two leaves (real overlayd processes on 127.0.0.1) under garbage, random-key
# HELLO and replay floods: the leaves' echo RTT/loss, the root's CPU/RSS, amplification
# and log lines, each beside the no-attack phase of the same run (~75 s, needs no root).
bench-hostile: venv
	$(BIN)/python bench/bench_hostile.py

# Time to DIRECT (first ping to first DIRECT echo or link, median and range of 5 runs, fresh
# leaves each run) through pairs of NATs in namespaces: plain MASQUERADE without an input
# firewall behind ISP routers, a home behind a carrier-grade NAT, one input firewall, and
# the flat rig with input firewalls on both (bench/bench_nat.py; ~1 min, longer per run
# that never goes DIRECT). Needs root, otherwise it says why and exits 0.
# BENCH_NAT_ARGS: e.g. --runs 3 --cap 10 --pairings a b flat
BENCH_NAT_ARGS ?=
bench-nat: venv
	$(BIN)/python bench/bench_nat.py $(BENCH_NAT_ARGS)

bench: bench-core bench-overlay bench-console bench-hostile bench-nat fuzz

# Every fuzz target of tests/fuzz (decoders, Node.receive_datagram with mutated and sealed
# packets) for FUZZ_SECONDS in all, with fresh inputs; prints executions per target and any
# finding (exception, minimal input in hex) and fails on one. `make test` runs a short,
# deterministic pass of the same targets. FUZZ_ARGS: e.g. --seed N --only node.sealed
FUZZ_SECONDS ?= 60
FUZZ_ARGS ?=
fuzz: venv
	$(BIN)/python -m tests.fuzz.run --seconds $(FUZZ_SECONDS) $(FUZZ_ARGS)

# A small overlay on this machine with the console on it (see console/demo.py): in network
# namespaces with NAT and TAPs as root (sysdeps installs ip/iptables/ping then), simulated
# on loopback otherwise. `make demo DEMO_ARGS=--no-console` prints a summary instead.
DEMO_ARGS ?=
demo: venv sysdeps
	$(BIN)/ztui demo $(DEMO_ARGS)

# screenshots/ from the console's snapshot tests (always current: make test checks them).
screenshots: venv
	$(BIN)/python scripts/screenshots.py
