# One-command entry points. Everything installs into .venv at the project root.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROMPT ?= a portrait photo of a smiling woman with curly hair
# pytest-xdist workers for `make test`, each test file on one worker; each worker holds ~2 GB (torch, models).
TEST_WORKERS ?= 2

.PHONY: install install-test bot test lint face doctor bench clean

$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch pulls the newest CUDA build (several GB). No -q on the
	# big installs: pip's progress bars show the downloads (torch alone is over 500 MB) instead of minutes of silence.
	$(PY) -m pip install --progress-bar on torch==2.13.0
	$(PY) -m pip install --progress-bar on -e .
	touch $@

$(VENV)/.test: $(VENV)/.runtime
	$(PY) -m pip install -q -e ".[test,ray]"
	touch $@

install: $(VENV)/.runtime
install-test: $(VENV)/.test

## Set up, fetch the 3D viewer, check .env, fetch weights on first run, start the bot (the Docker image's order).
bot: install
	$(VENV)/bin/t2f web-assets
	$(PY) bot.py --check-config
	$(VENV)/bin/t2f download
	$(PY) bot.py

## Lint and run the whole test suite (CI runs exactly this).
test: install-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: install-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

## Paint one face from PROMPT with the configured model.
face: install
	$(VENV)/bin/t2f generate "$(PROMPT)"

## Benchmarks: print Markdown tables and write them to bench/results/ (CPU here; CUDA adds the SD v1-4 architecture).
DEVICE = $(shell $(PY) -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')" 2>/dev/null)
BENCH_MODEL = $(if $(filter cuda,$(DEVICE)),sd14,tiny)
BENCH_SIZE = $(if $(filter cuda,$(DEVICE)),512,256)
bench: install
	$(PY) bench/reconstruction.py --runs 20 --out bench/results/reconstruction-$(DEVICE).md
	$(PY) bench/stages.py --model $(BENCH_MODEL) --out bench/results/stages-$(DEVICE).md
	$(PY) bench/service.py --model $(BENCH_MODEL) --size $(BENCH_SIZE) --out bench/results/service-$(DEVICE).md

doctor: install
	$(VENV)/bin/t2f doctor

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
