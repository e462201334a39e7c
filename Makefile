# Everyday commands. `make train` and `make test` create .venv and install on first use.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# Pinned on purpose: an unpinned torch can pull a multi-GB build that does not match
# torchvision. Override for another platform, e.g. make TORCH_SPEC="torch==2.9.1 torchvision==0.24.1"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
ARGS ?=

.PHONY: install train test lint format docs bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[dev,hf,openvino,mlflow,wandb,ray,serve]"
	touch $@

# A local data bundle beside the checkout (as CI and these machines lay it out): used when
# there is no data/intel and no SCENES_DATA. The package itself knows nothing of it.
LOCAL_BUNDLE ?= ../shared

train: install  ## fine-tune on data/intel (else a local bundle, else kagglehub); ARGS="--config ..." to pass flags
	@if [ -z "$$SCENES_DATA" ] && [ ! -d data/intel ] && [ -d "$(LOCAL_BUNDLE)/data/intel" ]; then \
		echo "no data/intel: using the local data bundle $(LOCAL_BUNDLE)/data/intel (weights: $(LOCAL_BUNDLE)/weights)"; \
		export SCENES_DATA="$(LOCAL_BUNDLE)/data/intel" SCENES_WEIGHTS_DIR="$(LOCAL_BUNDLE)/weights"; \
	fi; \
	$(BIN)/scenes train $(ARGS)

test: install  ## the whole test suite (minutes on 2 cores)
	$(BIN)/python -m pytest -q $(ARGS)

lint: install
	$(BIN)/ruff check src tests benchmarks docs
	$(BIN)/ruff format --check src tests benchmarks docs

format: install
	$(BIN)/ruff check --fix src tests benchmarks docs
	$(BIN)/ruff format src tests benchmarks docs

docs: install  ## the reference pages regenerated from the code, then the site (site/), strict
	$(BIN)/python docs/generate.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

bench: install  ## the README's figures (slow: ~20 min on 2 cores)
	cd benchmarks && ../$(BIN)/python train_cpu.py
	cd benchmarks && ../$(BIN)/python throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site
