# The README's two commands are `make demo` and `make test`. Each installs
# what it needs (scripts/bootstrap.sh): Debian packages, the Python venv, and
# the Go-built binaries (cached outside the repo by version).
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: bootstrap test demo demo-down stack-up stack-down stack-status bench bench-quick lint

bootstrap:
	bash scripts/bootstrap.sh

test: bootstrap
	bash scripts/test.sh $(ARGS)

stack-up: bootstrap
	$(PY) -m devstack up

stack-status:
	@$(PY) -m devstack status

stack-down:
	@if [ -x $(PY) ]; then $(PY) -m devstack down; fi

demo: bootstrap
	bash scripts/demo.sh

demo-down:
	bash scripts/demo.sh down

# `make bench QUICK=1` is `make bench-quick`: every bench with --quick (runs, ratios computed).
bench: bootstrap
	bash bench/run.sh $(if $(QUICK),--quick)

bench-quick: bootstrap
	bash bench/run.sh --quick

lint:
	bash scripts/lint.sh
