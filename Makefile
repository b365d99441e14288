# Every target installs what it needs: a fresh clone runs `make demo` or `make test` directly.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: install demo data test bench benchmark benchmark-cpu splicing-ceiling round-scale gpu-check study lint format clean

install: $(STAMP)

# Real Fashion-MNIST from Debian (no download at run time); the IDX loader tests read it.
$(FASHION_MNIST):
	apt-get install -y -q dataset-fashion-mnist || \
	  (apt-get update -q && apt-get install -y -q dataset-fashion-mnist)

# torch==2.13.0 first: it is the CPU wheel on disk; a bare range could pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# A simulated 3-round campaign through Prefect (temporary local server) and DVC, in out/demo.
demo: $(STAMP)
	$(VENV)/bin/deimos demo

# The project's own default campaign: rebuild data/ byte for byte (it matches data.dvc).
data: $(STAMP)
	$(VENV)/bin/deimos regenerate --campaign .

test: $(STAMP) $(FASHION_MNIST)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m benchmarks.acquisition
	$(PY) -m benchmarks.prediction

# The paper's comparisons at smoke scale (every task x method x 3 seeds), report in bench-results.
benchmark: $(STAMP) $(FASHION_MNIST)
	$(VENV)/bin/deimos benchmark --params benchmarks/params.yaml --out bench-results/smoke

# The evidence grid (cpu scale: 4 tasks x every method x 5 seeds, ~45 min on 2 cores, 2 worker
# processes) written over the committed docs/benchmark-cpu/: `git diff docs/benchmark-cpu` after
# a run shows whether it reproduced. Interrupted? Run it again: finished runs are read from runs/.
benchmark-cpu: $(STAMP) $(FASHION_MNIST)
	$(VENV)/bin/deimos benchmark --params benchmarks/params-cpu.yaml --workers 2 --out docs/benchmark-cpu
	git diff --stat -- docs/benchmark-cpu || true

# How well the SplicingCNN learns the simulated assay from 200 to 20,000 labels (README table).
splicing-ceiling: $(STAMP)
	$(PY) -m benchmarks.splicing_ceiling

# `deimos round` on a simulated campaign with a 265,137-sequence pool and 300 labels, per stage.
round-scale: $(STAMP)
	$(PY) -m benchmarks.round_scale

# On a CUDA machine: the `cuda` tests and a timing table (<= 8 min on one H100). Without CUDA the
# tests skip with the reason and it exits 0; DEIMOS_CHECK_DEVICE=cpu dry-runs it on the CPU.
gpu-check: $(STAMP)
	$(PY) -m benchmarks.gpu_check

study: $(STAMP)
	$(PY) -m deimos.acquisition.optimality --out out/batch_optimality

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy deimos deimos_cli models benchmarks tasks flows
	$(VENV)/bin/mypy --strict deimos/acquisition

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
