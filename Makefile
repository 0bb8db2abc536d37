# Tessera: one non-recursive Makefile. Objects go to build/<mode>/.
#   make run     install missing packages, build, run the main job
#   make test    install missing packages, build (ASan+UBSan), run the suite
# Modes: MODE=release (default) | asan | tsan. Warnings are errors when CI=true
# or STRICT=1.

MODE    ?= release
BUILD   := build/$(MODE)
CC      ?= gcc
ifeq ($(CC),cc)
CC      := gcc
endif

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla
ifneq ($(filter true 1,$(CI) $(STRICT)),)
WARN    += -Werror
endif
BASEARCH ?= -march=x86-64-v2
CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE -g -pthread $(WARN) -fno-strict-aliasing -I core
ifeq ($(MODE),asan)
OPT     := -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDSAN   := -fsanitize=address,undefined
else ifeq ($(MODE),tsan)
OPT     := -O1 -fsanitize=thread -fno-omit-frame-pointer
LDSAN   := -fsanitize=thread
else
OPT     := -O2
LDSAN   :=
endif
CFLAGS  := $(CFLAGS_COMMON) $(OPT) $(BASEARCH)
# OpenBLAS is not linked: core/dense.c dlopens it when TESSERA_BLAS asks for
# it, so a run with BLAS off starts none of its threads.
LDLIBS  := -lhwloc -lnuma -lpcre2-8 -lm -lpthread -ldl

# Per-ISA flags by directory (BLIS/tinyBLAS style: one source per ISA).
AVX2_FLAGS   := -mavx2 -mfma -mf16c -mbmi2
AVX512_FLAGS := $(AVX2_FLAGS) -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni

LIB_SRC := $(wildcard core/*.c quant/*.c sched/*.c simd/*.c simd/scalar/*.c \
                      simd/x86/avx2/*.c simd/x86/avx512/*.c simd/x86/amx/*.c)
TOOL_SRC  := $(wildcard tools/*.c)
TEST_SRC  := $(wildcard tests/*.c)
BENCH_SRC := $(wildcard bench/*.c)

LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
TOOL_OBJ  := $(TOOL_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ  := $(TEST_SRC:%.c=$(BUILD)/%.o)
BENCH_OBJ := $(BENCH_SRC:%.c=$(BUILD)/%.o)

LIB   := $(BUILD)/libtessera.a
TOOL  := $(BUILD)/tessera
TESTS := $(BUILD)/tessera-tests

.PHONY: all deps tools run test check asan tsan bench bench-build clean check-deps native
.PHONY: check-arm deps-arm bundle check-rss
all: $(TOOL) $(TESTS)
tools: $(TOOL)

$(BUILD)/simd/x86/avx2/%.o: EXTRA := $(AVX2_FLAGS)
$(BUILD)/simd/x86/avx512/%.o: EXTRA := $(AVX512_FLAGS)
$(BUILD)/simd/x86/amx/%.o: EXTRA := $(AVX512_FLAGS) -mamx-tile -mamx-int8 -mamx-bf16
# The amx kernels on emulated tiles (simd/x86/amx/tile.h), for hosts without AMX.
$(BUILD)/tests/amx_emul.o: EXTRA := $(AVX512_FLAGS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EXTRA) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# DT_RPATH $ORIGIN (also for the libraries' own dependencies): the binary runs
# on another machine with its shared libraries copied next to it (make bundle).
$(TOOL): $(TOOL_OBJ) $(LIB)
	$(CC) $(CFLAGS) $(LDSAN) -o $@ $(TOOL_OBJ) $(LIB) $(LDLIBS) \
	  -Wl,--disable-new-dtags,-rpath,'$$ORIGIN'

$(TESTS): $(TEST_OBJ) $(LIB)
	$(CC) $(CFLAGS) $(LDSAN) -o $@ $(TEST_OBJ) $(LIB) $(LDLIBS)

# Each bench/<name>.c is its own program: build/<mode>/<name>.
BENCHES := $(BENCH_SRC:bench/%.c=$(BUILD)/%)
$(BUILD)/bench_%: $(BUILD)/bench/bench_%.o $(LIB)
	$(CC) $(CFLAGS) $(LDSAN) -o $@ $< $(LIB) $(LDLIBS)
bench-build: $(BENCHES)

# make bench: the kernel benches, each variant validated against its scalar
# twin before it is timed (bench_kernels refuses to time a mismatch), then
# the pool dispatch bench. CSV on stdout (STYLE section 12). Timing on a
# shared box is noise: pin, idle it, and see bench/RESULTS.md for method.
bench: deps
	@$(MAKE) --no-print-directory MODE=release bench-build
	build/release/bench_kernels --reps 5
	build/release/bench_pool

deps:
	@sh tools/install-deps.sh

# The main job: the embedded default model (../shared/models/stories260K.gguf
# when present, else one generated here), summarised and run.
run: deps
	@$(MAKE) --no-print-directory MODE=release tools
	@sh tools/run-default.sh build/release/tessera

# The suite runs under ASan+UBSan; the CLI it drives is the ASan build too.
test: deps
	@$(MAKE) --no-print-directory MODE=asan all
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  TESSERA_BIN=build/asan/tessera build/asan/tessera-tests $(T)

check: test

asan: test

tsan:
	@$(MAKE) --no-print-directory MODE=tsan all
	TSAN_OPTIONS=halt_on_error=1 TESSERA_BIN=build/tsan/tessera build/tsan/tessera-tests \
	  pool mm_glu mm_threads engine numa batch_invariance_dense batch_step_checks

check-deps:
	@sh tools/check-deps.sh

# The dry-run memory estimate against measured peak RSS: the release build
# (sanitizers' shadow memory makes RSS incomparable, so make test skips it).
check-rss: deps
	@$(MAKE) --no-print-directory MODE=release all
	@TESSERA_BIN=build/release/tessera build/release/tessera-tests estimate_matches

# ---- check-arm: aarch64 kernels under qemu-user (STYLE §11) ----
# Cross-builds the kernel and quant tests with aarch64-linux-gnu-gcc into
# build/arm/ (static: no core/ sched/ tokenizer/, no openblas hwloc numa pcre2)
# and runs them under qemu-aarch64 -cpu max (dotprod: neon_dot level) and
# -cpu cortex-a53 (no dotprod: neon level), so both dispatch branches run.
# Sources: quant/ simd/ simd/scalar/ at -march=armv8-a, simd/arm/neon/ at
# -march=armv8-a, simd/arm/neon_dot/ at -march=armv8.2-a+dotprod (per-file
# flags, no target attributes), plus tests/run.c, test_kernels.c,
# test_kernels_more.c, test_quant.c and test_nonfinite.c. -DTS_TEST_SIMD_ONLY compiles out
# the few tests of those files that need core/ (ts_mm_run over the pool) or the tessera CLI:
# the least invasive split (one #ifndef per file, no test moved). The x86 build never
# compiles simd/arm/, and this one never compiles simd/x86/.
ARM_CC     := aarch64-linux-gnu-gcc
ARM_BUILD  := build/arm
ARM_MARCH  := -march=armv8-a
ARM_CFLAGS := $(CFLAGS_COMMON) -O2 -DTS_TEST_SIMD_ONLY
ARM_SRC    := $(wildcard quant/*.c simd/*.c simd/scalar/*.c simd/arm/neon/*.c \
                         simd/arm/neon_dot/*.c) tests/run.c tests/test_kernels.c \
                         tests/test_kernels_more.c tests/test_quant.c tests/test_nonfinite.c
ARM_OBJ    := $(ARM_SRC:%.c=$(ARM_BUILD)/%.o)
ARM_TESTS  := $(ARM_BUILD)/tessera-tests
# qemu -cpu model:the level it must detect (TESSERA_EXPECT_ISA).
ARM_CPUS   := max:neon_dot cortex-a53:neon
ARM_FILTER := kernels test_quant nonfinite

$(ARM_BUILD)/simd/arm/neon_dot/%.o: ARM_MARCH := -march=armv8.2-a+dotprod

$(ARM_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(ARM_CC) $(ARM_CFLAGS) $(ARM_MARCH) -MMD -MP -c $< -o $@

$(ARM_TESTS): $(ARM_OBJ)
	$(ARM_CC) $(ARM_CFLAGS) -static -o $@ $^ -lm

# Only check-arm needs the cross toolchain and qemu-user: detect with dpkg,
# install just what is missing (as tools/install-deps.sh does for the rest).
deps-arm:
	@missing=""; for p in gcc-aarch64-linux-gnu qemu-user; do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# One run per (CPU, filter); each prints "N passed, N failed, N skipped".
# TESSERA_EXPECT_ISA makes test_kernels_table_complete fail on a detection slip.
check-arm: deps-arm
	@$(MAKE) --no-print-directory $(ARM_TESTS)
	@fail=0; for cl in $(ARM_CPUS); do cpu=$${cl%%:*}; lvl=$${cl##*:}; \
	  for f in $(ARM_FILTER); do \
	    echo "== qemu-aarch64 -cpu $$cpu (expects $$lvl): $$f"; \
	    TESSERA_EXPECT_ISA=$$lvl qemu-aarch64 -cpu $$cpu $(ARM_TESTS) $$f || fail=1; \
	  done; done; \
	[ $$fail = 0 ] || { echo "check-arm: FAILED"; exit 1; }

# build/bundle/: the release tessera plus every shared library it loads except
# the C runtime's own, for running it elsewhere (e.g. the many-core NUMA sweep:
# build/bundle/tessera bench -m M --sweep 1,2,4,8,16 --sweep-csv s.csv --sweep-svg s.svg).
bundle:
	@$(MAKE) --no-print-directory MODE=release tools
	@rm -rf build/bundle && mkdir -p build/bundle && cp build/release/tessera build/bundle/
	@{ ldd build/release/tessera; ldd "$$($(CC) -print-file-name=libopenblas.so.0)"; \
	  echo "x => $$($(CC) -print-file-name=libopenblas.so.0) y"; } | \
	  awk '/=> \// {print $$3}' | sort -u | \
	  grep -Ev '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*)\.so' | \
	  while read -r l; do cp -L "$$l" build/bundle/; done
	@ls build/bundle

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BENCH_OBJ:.o=.d) $(ARM_OBJ:.o=.d)
