# routelab: GNU make. `make` builds ./routelab; `make test` runs the suite; `make run` the main job.
CC      = gcc
# OpenBLAS's OpenMP build: BLAS calls made inside our parallel regions run single-threaded in
# the same thread team, so OpenMP and OpenBLAS never fight over the two cores.
BLASDIR = /usr/lib/x86_64-linux-gnu/openblas-openmp
# Source folders by layer, lowest first (tools/check_layers.sh enforces the order).
LAYERS  = core model data run exp cmd
CFLAGS  = -std=c11 -O3 -march=native -fopenmp -Wall -Wextra -Wno-unused-parameter -g \
          -D_GNU_SOURCE $(addprefix -Isrc/,$(LAYERS)) -I/usr/include/x86_64-linux-gnu/openblas-openmp
LDLIBS  = -L$(BLASDIR) -Wl,-rpath,$(BLASDIR) -lopenblas -ldnnl -lpcre2-8 -lcjson -linih -lxxhash -lm
SRC     = $(wildcard $(addsuffix /*.c,$(addprefix src/,$(LAYERS))))
HDR     = $(wildcard $(addsuffix /*.h,$(addprefix src/,$(LAYERS))))
LIBOBJ  = $(patsubst src/%.c,build/%.o,$(filter-out src/cmd/main.c,$(SRC)))
TESTS   = $(patsubst tests/%.c,build/%,$(wildcard tests/test_*.c))
DEPS    = deps

.PHONY: all test run clean deps check-long bench data-kjv check-layers

all: routelab

build/%.o: src/%.c $(HDR) | build
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

build/libroutelab.a: $(LIBOBJ)
	rm -f $@ && ar rcs $@ $^

routelab: build/cmd/main.o build/libroutelab.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

build/test_%: tests/test_%.c $(wildcard tests/*.h) build/libroutelab.a | build
	$(CC) $(CFLAGS) -Itests $< build/libroutelab.a -o $@ $(LDLIBS)

build:
	mkdir -p build

# Installs the Debian packages routelab needs (as root; a no-op when they are present).
deps:
	@sh tools/install_deps.sh

# No lower layer includes a header of a higher one (see tools/check_layers.sh).
check-layers:
	@sh tools/check_layers.sh

test: deps check-layers routelab $(TESTS)
	@bash tests/run.sh

# The main job on built-in data: a 2-layer model learns multi-query associative recall
# (T 64, 4 key-value pairs); test accuracy passes 90% in about 500 steps.
run: deps routelab
	OMP_WAIT_POLICY=PASSIVE ./routelab repro all --scale=tiny --seeds=1 --out=runs/tiny

# Real English for CPU-scale runs: Debian's King James Bible (4.3 MB, about 1M GPT-2 tokens),
# prepared with GPT-2's tokenizer (needs ../shared/data/gpt2-tokenizer, or GPT2_DIR=...) into
# data/kjv-gpt2, and with a BPE of 8192 tokens trained on it into data/kjv-8k.
GPT2_DIR ?= ../shared/data/gpt2-tokenizer
data-kjv: deps routelab
	@command -v bible >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq bible-kjv >/dev/null; } \
	  || { echo "routelab: run: sudo apt-get install -y bible-kjv" >&2; exit 1; }
	mkdir -p data
	bible -l0 'gen1:1-rev22:21' > data/kjv.txt
	./routelab prepare --input=data/kjv.txt --tokenizer=gpt2:$(GPT2_DIR) --out=data/kjv-gpt2
	./routelab tokenizer-train --input=data/kjv.txt --vocab_size=8192 --out=data/kjv-8k.bpe
	./routelab prepare --input=data/kjv.txt --tokenizer=data/kjv-8k.bpe --out=data/kjv-8k

# routelab vs the PyTorch twin on the same cores (QUICK=1: one row, fp32; PRECISIONS=fp32,bf16
# to choose). Needs Debian's python3-torch.
bench: deps routelab
	@/usr/bin/python3 -c "import torch" 2>/dev/null || { [ "$$(id -u)" = 0 ] && \
	  apt-get install -y -qq python3-torch python3-numpy >/dev/null; } || \
	  { echo "routelab: run: sudo apt-get install -y python3-torch python3-numpy" >&2; exit 1; }
	/usr/bin/python3 bench/bench.py $(if $(QUICK),--quick) $(if $(PRECISIONS),--precisions $(PRECISIONS))

# Heavier acceptance checks: MQAR accuracy, WikiText training, distillation (~10 min).
check-long: deps routelab
	@bash tests/long.sh

clean:
	rm -rf build routelab
