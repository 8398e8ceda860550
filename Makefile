# meshgate: `make demo` runs the seed walkthrough on a local mesh, `make test` runs
# lint, types and the whole test suite. Both set up everything they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEBS   := iptables curl wrk iproute2 bubblewrap nginx squid gunicorn python3-httpbin chromium

.PHONY: all test test-explore demo lint types unit e2e deps venv bench clean

all: test

# Debian packages the runtime needs (only as root, only when missing), and Python's venv
# (Debian splits it out as python3-venv) so that the virtualenv can be made. nginx, squid,
# gunicorn and python3-httpbin back world hosts (docs/world.md) and are the programs pods of
# those images run (docs/pods.md); meshgate runs them itself, not through their services, so
# the install keeps Debian from starting them as host services (policy-rc.d says "not now").
# chromium is the browser of the console's tests. etcd-server (/usr/bin/etcd) backs the etcd
# store's tests (tests/etcd_cluster.py starts members on loopback; docs/store.md).
deps:
	@missing=""; \
	for c in iptables:iptables curl:curl wrk:wrk ip:iproute2 setpriv:util-linux bwrap:bubblewrap \
	         nginx:nginx squid:squid gunicorn:gunicorn chromium:chromium etcd:etcd-server; do \
	  cmd=$${c%%:*}; pkg=$${c##*:}; command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	[ -d /usr/lib/python3/dist-packages/httpbin ] || missing="$$missing python3-httpbin"; \
	command -v $(PYTHON) >/dev/null 2>&1 || missing="$$missing python3"; \
	$(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing"; \
	    guard=""; if [ ! -e /usr/sbin/policy-rc.d ]; then guard=1; \
	      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; fi; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	    rc=$$?; [ -z "$$guard" ] || rm -f /usr/sbin/policy-rc.d; [ $$rc = 0 ] || exit $$rc; \
	  else \
	    echo "note: missing$$missing (install them as root; e2e tests will skip)"; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

types: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q -m "not e2e"

e2e: deps $(STAMP)
	$(BIN)/pytest -q -m e2e

test: deps $(STAMP) lint types
	$(BIN)/pytest -q

# Every property test with new random examples, many of them (tests/conftest.py's explore
# profile: MESHGATE_HYPOTHESIS_EXAMPLES per test, 5000 unless set). `make test` always runs
# the same examples; this looks for new failures. SEED=N runs the examples of seed N again.
test-explore: $(STAMP)
	@seed=$${SEED:-$$($(BIN)/python -c 'import random; print(random.randrange(2**32))')}; \
	echo "hypothesis seed $$seed: make test-explore SEED=$$seed draws these examples again"; \
	$(BIN)/pytest -q -m "hypothesis and not e2e" --hypothesis-profile=explore \
	  --hypothesis-seed=$$seed --hypothesis-show-statistics

demo: deps $(STAMP)
	$(BIN)/python -m meshgate.demo

# Every benchmark; each prints its figures and writes benchmarks/results/NAME.json.
bench: deps $(STAMP)
	$(BIN)/python benchmarks/config_scale.py
	$(BIN)/python benchmarks/translate_scale.py
	$(BIN)/python benchmarks/xds_push_latency.py
	$(BIN)/python benchmarks/apply_latency.py
	$(BIN)/python benchmarks/dataplane.py
	$(BIN)/python benchmarks/scale_sync.py
	$(BIN)/python benchmarks/delete_latency.py
	$(BIN)/python benchmarks/faults.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
