# Entry points. `make demo` and `make test` set up what they need on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

RECIPE ?=
SOURCE ?= raw
RAW    ?=
OUT    ?=
ALIGN  ?= 1
HF     ?=
SPLITS ?=
ARGS   ?=

comma  := ,
BUILD_ARGS := recipe=$(if $(findstring $(comma),$(RECIPE)),[$(RECIPE)],$(RECIPE)) source=$(SOURCE) \
	$(if $(RAW),raw=$(RAW)) $(if $(OUT),out=$(OUT)) $(if $(HF),hf=$(HF)) \
	$(if $(filter 0,$(ALIGN)),align.enabled=false) $(ARGS)

.PHONY: setup lock download build-dataset demo test test-all lint clean-data verify inspect

setup: $(STAMP)

# Install the exact, resolved set from requirements.lock (torch 2.8 line, pinned by whisperx).
# About 8 GB in .venv (PyPI's torch 2.8 for Linux x86_64 brings the CUDA wheels even on CPU);
# --no-cache-dir keeps pip from holding a second copy of the wheels in ~/.cache.
$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --no-cache-dir --upgrade pip
	$(PY) -m pip install -q --no-cache-dir -r requirements.lock
	$(PY) -m pip install -q --no-cache-dir --no-deps -e .
	touch $(STAMP)

# Re-resolve requirements.in into requirements.lock (needs the package index).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q -r requirements.in
	{ echo '# Resolved from requirements.in by `make lock` (pip freeze of a clean venv); `make setup` installs exactly this.'; \
	  .lock-venv/bin/pip freeze --exclude-editable | grep -v '^qwen-audio-data'; } > requirements.lock
	rm -rf .lock-venv

# Download a corpus from its publisher (resumable, checksums verified, safe extraction).
download: $(STAMP)
	@test -n "$(RECIPE)" || { echo "usage: make download RECIPE=<name|a,b> [RAW=dir] [SPLITS=a,b] [FORCE=1]"; exit 2; }
	$(PY) -m dataset_recipes.download recipe=$(if $(findstring $(comma),$(RECIPE)),[$(RECIPE)],$(RECIPE)) \
		$(if $(RAW),raw=$(RAW)) $(if $(SPLITS),splits=[$(SPLITS)]) $(if $(filter 1,$(FORCE)),force=true)

build-dataset: $(STAMP)
	@test -n "$(RECIPE)" || { echo "usage: make build-dataset RECIPE=<name|a,b|all> [SOURCE=raw|sample|hf] [RAW=dir] [HF=hub id or dir] [OUT=dir] [ALIGN=0] [ARGS='<overrides of conf/build.yaml>']"; exit 2; }
	$(PY) -m dataset_recipes.build $(BUILD_ARGS)

# Every recipe's sample corpus + mixture.json. A sample build leaves out the SRWT of a
# language whose alignment model is not on this machine (Chinese: a wav2vec2 model that is
# not bundled), says so, and records it in the report and card.
demo: $(STAMP)
	$(PY) -m dataset_recipes.build recipe=all source=sample $(if $(filter 0,$(ALIGN)),align.enabled=false) $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not gpu"

test-all: $(STAMP)
	$(PY) -m pytest -q -m "not gpu"

lint: $(STAMP)
	$(PY) -m ruff check pipeline dataset_recipes trainer tests bench

# Reread every shard of an output directory against index.json and FORMAT.md (issue 6).
verify: $(STAMP)
	@test -n "$(OUT)" || { echo "usage: make verify OUT=<output dir, e.g. data/shards/clotho>"; exit 2; }
	$(PY) -m pipeline.verify $(OUT)

# Print a few samples (prompts, targets, durations) of an output directory or one shard.
inspect: $(STAMP)
	@test -n "$(OUT)" || { echo "usage: make inspect OUT=<output dir or .tar shard>"; exit 2; }
	$(PY) -m pipeline.inspect $(OUT)

clean-data:
	rm -rf data/shards data/samples

# Chat-stage conversations (ChatML, ms-swift or LLaMA-Factory JSONL + FLAC files) from built
# shards, for fine-tuning with other trainers (issue 14; see README "Chat stage").
.PHONY: export
export: $(STAMP)
	@test -n "$(FORMAT)" && test -n "$(OUT)" || { echo "usage: make export FORMAT=chatml|swift|llamafactory OUT=<dir> [MIXTURE=data/shards/mixture.json] [ROLE=train] [SEED=0]"; exit 2; }
	$(PY) -m pipeline.export --format $(FORMAT) --out $(OUT) $(if $(MIXTURE),--mixture $(MIXTURE)) \
		$(if $(ROLE),--role $(ROLE)) $(if $(SEED),--seed $(SEED))
