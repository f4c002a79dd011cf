# routelab: GNU make. `make` builds ./routelab; `make test` runs the suite; `make run` the main job.
CC      = gcc
# OpenBLAS's OpenMP build: BLAS calls made inside our parallel regions run single-threaded in
# the same thread team, so OpenMP and OpenBLAS never fight over the two cores.
BLASDIR = /usr/lib/x86_64-linux-gnu/openblas-openmp
# Source folders by layer, lowest first (tools/check_layers.sh enforces the order).
LAYERS  = core model data run exp cmd
CFLAGS  = -std=c11 -O3 -march=native -fopenmp -Wall -Wextra -Wno-unused-parameter -g \
          -D_GNU_SOURCE $(addprefix -Isrc/,$(LAYERS)) -I/usr/include/x86_64-linux-gnu/openblas-openmp
# SANITIZE=1: AddressSanitizer + UndefinedBehaviorSanitizer build in build-san/ (binary
# build-san/routelab), so it never clobbers the normal build; `make test SANITIZE=1` runs the
# C test programs and the CLI tests on it (see tests/run.sh for the ASAN_OPTIONS it sets).
ifeq ($(SANITIZE),1)
BUILD   = build-san
BIN     = build-san/routelab
CFLAGS  += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else ifeq ($(MPI),1)
BUILD   = build-mpi
BIN     = routelab
else
BUILD   = build
BIN     = routelab
endif
# MPI=1: data-parallel training over processes (src/core/dist.h) with Debian's OpenMPI
# (libopenmpi-dev): compiled by mpicc into build-mpi/, linked as ./routelab. Without it the
# build has no MPI at all and refuses to run under mpirun. ./routelab is relinked when the last
# link was of the other kind (.routelab-build names it). `make test` also builds the MPI binary
# build-mpi/routelab for tests/test_mpi.sh where mpicc is installed.
ifeq ($(MPI),1)
CC      = mpicc
CFLAGS  += -DROUTELAB_MPI
endif
ifeq ($(BIN),routelab)
ifneq ($(shell cat .routelab-build 2>/dev/null),$(BUILD))
$(shell rm -f routelab)
endif
endif
LDLIBS  = -L$(BLASDIR) -Wl,-rpath,$(BLASDIR) -lopenblas -ldnnl -lpcre2-8 -lutf8proc -lcjson -linih -lxxhash -lm
SRC     = $(wildcard $(addsuffix /*.c,$(addprefix src/,$(LAYERS))))
HDR     = $(wildcard $(addsuffix /*.h,$(addprefix src/,$(LAYERS))))
LIBOBJ  = $(patsubst src/%.c,$(BUILD)/%.o,$(filter-out src/cmd/main.c,$(SRC)))
TESTS   = $(patsubst tests/%.c,$(BUILD)/%,$(wildcard tests/test_*.c))
DEPS    = deps

.PHONY: all test run run-llm clean deps check-long bench bench-hf data-kjv check-layers fuzz fuzz-build

all: $(BIN)

$(BUILD)/%.o: src/%.c $(HDR) | $(BUILD)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libroutelab.a: $(LIBOBJ)
	rm -f $@ && ar rcs $@ $^

$(BIN): $(BUILD)/cmd/main.o $(BUILD)/libroutelab.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)
	$(if $(filter routelab,$(BIN)),@echo $(BUILD) > .routelab-build)

$(BUILD)/test_%: tests/test_%.c $(wildcard tests/*.h) $(BUILD)/libroutelab.a | $(BUILD)
	$(CC) $(CFLAGS) -Itests $< $(BUILD)/libroutelab.a -o $@ $(LDLIBS)

$(BUILD):
	mkdir -p $(BUILD)

# ----------------------------------------------------------------------------- fuzzing
# libFuzzer targets (clang -fsanitize=fuzzer,address,undefined), one per file parser:
# tests/fuzz/fuzz_<name>.c, seed corpus tests/fuzz/corpus/<name>/. The library is rebuilt with
# clang into build-fuzz/; in a target fatal() longjmps back instead of exiting (fatal_set_jump,
# common.h). Adding a target (as safetensors and checkpoint_v2 were) is adding one
# tests/fuzz/fuzz_<name>.c and its corpus directory; `make fuzz` and `make test` pick it up.
FUZZCC     = clang
FUZZFLAGS  = -std=c11 -O1 -g -fopenmp -D_GNU_SOURCE $(addprefix -Isrc/,$(LAYERS)) \
             -I/usr/include/x86_64-linux-gnu/openblas-openmp -fno-omit-frame-pointer \
             -fsanitize=address,undefined -fno-sanitize-recover=undefined -Wno-unused-parameter
FUZZ_OBJ   = $(patsubst src/%.c,build-fuzz/%.o,$(filter-out src/cmd/main.c,$(SRC)))
FUZZ_NAMES = $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS  = $(addprefix build-fuzz/fuzz_,$(FUZZ_NAMES))
FUZZ_RUNS ?= 1000000

build-fuzz/%.o: src/%.c $(HDR)
	@mkdir -p $(dir $@)
	$(FUZZCC) $(FUZZFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

build-fuzz/libroutelab.a: $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h) build-fuzz/libroutelab.a
	$(FUZZCC) $(FUZZFLAGS) -fsanitize=fuzzer -Itests/fuzz $< build-fuzz/libroutelab.a -o $@ $(LDLIBS)

fuzz-build: $(FUZZ_BINS)

# Each target for FUZZ_RUNS (default 10^6) executions on a copy of its seed corpus (new inputs go
# to build-fuzz/corpus/<name>, crashes to build-fuzz/crash-*). Measured for 10^6 executions on a
# 2-core host shared with other jobs: shard 19 s, bpe 30-60 s, safetensors 38 s (27,000 exec/s),
# hf_config 94 s (~10,000 exec/s), hf_tokenizer ~6 min (~2,900 exec/s), checkpoint 13 min,
# checkpoint_v2 9.3-13 min (1,800 exec/s from the seeds, 1,300 from a grown corpus: each
# accepted input builds the tiny model and loads it), config 29 min, refcheck (13-19 kB
# index.json inputs, ~300 exec/s) about an hour: `make fuzz` takes ~2.1 h;
# FUZZ_RUNS=100000 for a 13-minute pass.
fuzz: deps fuzz-build
	@bash tests/fuzz/run.sh long $(FUZZ_RUNS) $(FUZZ_NAMES)

# Installs the Debian packages routelab needs (as root; a no-op when they are present).
deps:
	@sh tools/install_deps.sh

# No lower layer includes a header of a higher one (see tools/check_layers.sh).
check-layers:
	@sh tools/check_layers.sh

MPI_TEST_BIN = $(if $(filter 1,$(SANITIZE) $(MPI)),,$(if $(shell command -v mpicc),build-mpi/routelab))
ifneq ($(MPI),1)
.PHONY: build-mpi/routelab
build-mpi/routelab:
	@$(MAKE) --no-print-directory MPI=1 BIN=build-mpi/routelab build-mpi/routelab
endif

test: deps check-layers $(BIN) $(TESTS) $(if $(filter 1,$(SANITIZE)),,fuzz-build) $(MPI_TEST_BIN)
	@RL_BUILD=$(BUILD) RL_BIN=./$(BIN) RL_SANITIZE=$(SANITIZE) RL_MPI_BIN=$(MPI_TEST_BIN) bash tests/run.sh

# The main job on built-in data: a 2-layer model learns multi-query associative recall
# (T 64, 4 key-value pairs); test accuracy passes 90% in about 500 steps.
run: deps routelab
	OMP_WAIT_POLICY=PASSIVE ./routelab repro all --scale=tiny --seeds=1 --out=runs/tiny

# The paper's Section 5 on a small Qwen3-family model trained and exported here (no downloads):
# the four llm-* recipes at tiny scale (about 5 minutes on 2 cores).
run-llm: deps routelab
	OMP_WAIT_POLICY=PASSIVE ./routelab repro llm --scale=tiny --seeds=1 --out=runs/tiny-llm

# Real English for CPU-scale runs: Debian's King James Bible (4.3 MB, about 1M GPT-2 tokens),
# prepared with GPT-2's tokenizer (needs ../shared/data/gpt2-tokenizer, or GPT2_DIR=...) into
# data/kjv-gpt2, and with BPEs of 8192 and 2048 tokens trained on it into data/kjv-8k and
# data/kjv-2k (the medium scale's: a smaller head leaves more of the time to attention).
GPT2_DIR ?= ../shared/data/gpt2-tokenizer
# Another text in the same tokenizers (the decoupled-data recipe distils gates on it)
SHAKESPEARE ?= ../shared/data/tinyshakespeare/input.txt
data-kjv: deps routelab
	@command -v bible >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq bible-kjv >/dev/null; } \
	  || { echo "routelab: run: sudo apt-get install -y bible-kjv" >&2; exit 1; }
	mkdir -p data
	bible -l0 'gen1:1-rev22:21' > data/kjv.txt
	./routelab prepare --input=data/kjv.txt --tokenizer=gpt2:$(GPT2_DIR) --out=data/kjv-gpt2
	./routelab tokenizer-train --input=data/kjv.txt --vocab_size=8192 --out=data/kjv-8k.bpe
	./routelab prepare --input=data/kjv.txt --tokenizer=data/kjv-8k.bpe --out=data/kjv-8k
	./routelab tokenizer-train --input=data/kjv.txt --vocab_size=2048 --out=data/kjv-2k.bpe
	./routelab prepare --input=data/kjv.txt --tokenizer=data/kjv-2k.bpe --out=data/kjv-2k
	./routelab prepare --input=$(SHAKESPEARE) --tokenizer=data/kjv-8k.bpe --out=data/shakespeare-8k
	./routelab prepare --input=$(SHAKESPEARE) --tokenizer=data/kjv-2k.bpe --out=data/shakespeare-2k

# routelab vs the PyTorch twin on the same cores (QUICK=1: one row, fp32; PRECISIONS=fp32,bf16
# to choose), then the Hugging Face rows of bench-hf (HF=0 leaves them out). Needs Debian's
# python3-torch.
bench: deps routelab
	@/usr/bin/python3 -c "import torch" 2>/dev/null || { [ "$$(id -u)" = 0 ] && \
	  apt-get install -y -qq python3-torch python3-numpy >/dev/null; } || \
	  { echo "routelab: run: sudo apt-get install -y python3-torch python3-numpy" >&2; exit 1; }
	/usr/bin/python3 bench/bench.py $(if $(QUICK),--quick) $(if $(PRECISIONS),--precisions $(PRECISIONS))
	$(if $(filter 0,$(HF)),,/usr/bin/python3 bench/hf_eval.py)

# Hugging Face models: eval tokens/s, gate-distillation and single-layer fine-tune step times of
# a Qwen3-0.6B-shaped model (random BF16 weights, written once into build/bench-hf) against the
# PyTorch twin of the Hugging Face semantics, and peak RSS of both (bench/hf_eval.py; ~15 min).
bench-hf: deps routelab
	/usr/bin/python3 bench/hf_eval.py

# Heavier acceptance checks: MQAR accuracy, WikiText training, distillation (~10 min), and sweeps
# on a single-node Slurm and make -j2 (~30 min; tests/slurm_local.sh, as root).
check-long: deps routelab
	@bash tests/long.sh

clean:
	rm -rf build build-san build-mpi build-fuzz routelab .routelab-build
