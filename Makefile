# avattn: `make demo` (main job), `make test` (tests), `make bench` (CPU benchmarks). Each sets up first.
PY := $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV)/bin/python,.venv/bin/python)
DEMO_ARGS ?= --data synthetic --setting supervised --epochs 2 --amp auto --out runs/demo --overwrite

.PHONY: setup demo test test-avx2 bench lint clean
setup:
	bash scripts/setup.sh

demo: setup
	$(PY) -m examples.cmran train $(DEMO_ARGS)

test: setup
	$(PY) -m pytest -q -n 2 --dist loadgroup

# The instruction-set-sensitive tests under the AVX2 dispatch (CI runs this after `make test`).
test-avx2: setup
	ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 $(PY) -m pytest -q -n 2 --dist loadgroup -m numerics

bench: setup
	$(PY) -m pytest -q benchmarks/bench_attention_cpu.py --benchmark-only --benchmark-columns=median,iqr --benchmark-sort=name
	$(PY) benchmarks/bench_cmran.py --modes eager,compile --steps 5

lint: setup
	$(PY) -m ruff check avattn examples benchmarks tests
	$(dir $(PY))lint-imports  # the import contracts of pyproject.toml

clean:
	rm -rf .venv runs .pytest_cache .benchmarks
