# avattn: `make demo` (main job), `make test` (tests), `make bench` (CPU benchmarks). Each sets up first.
PY := $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV)/bin/python,.venv/bin/python)
DEMO_ARGS ?= --data synthetic --setting supervised --epochs 2 --out runs/demo --overwrite

.PHONY: setup demo test bench lint clean
setup:
	bash scripts/setup.sh

demo: setup
	$(PY) -m examples.cmran train $(DEMO_ARGS)

test: setup
	$(PY) -m pytest -q -n 2 --dist loadgroup

bench: setup
	$(PY) -m pytest -q benchmarks/bench_attention_cpu.py --benchmark-only --benchmark-columns=median,iqr --benchmark-sort=name
	$(PY) benchmarks/bench_cmran.py --modes eager,compile --steps 5

lint: setup
	$(PY) -m ruff check avattn examples benchmarks tests

clean:
	rm -rf .venv runs .pytest_cache .benchmarks
