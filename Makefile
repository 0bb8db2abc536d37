# Tessera: one non-recursive Makefile. Objects go to build/<mode>/.
#   make run     install missing packages, build, run the main job
#   make test    install missing packages, build (ASan+UBSan), run the suite
#   make fuzz    build the libFuzzer harnesses with clang, run each FUZZ_TIME s
# Modes: MODE=release (default) | asan | tsan | fuzz (clang). Warnings are errors
# when CI=true or STRICT=1. Any compiler but gcc builds apart: CC=clang -> build/<mode>-clang/.

MODE    ?= release
CC      ?= gcc
ifeq ($(CC),cc)
CC      := gcc
endif
# Objects of different compilers must not mix: gcc keeps build/<mode>/ (the
# paths scripts and the targets below use), any other CC gets its own
# directory, e.g. CC=clang -> build/asan-clang/. builddir = the directory of a
# mode under the current CC, for targets that run a sub-make in another mode.
CC_NAME := $(notdir $(firstword $(CC)))
CC_TAG  := $(if $(filter gcc,$(CC_NAME)),,-$(CC_NAME))
builddir = build/$(1)$(CC_TAG)
BUILD   := $(call builddir,$(MODE))
ifeq ($(MODE),fuzz)
ifeq ($(filter clang%,$(CC_NAME)),)
$(error MODE=fuzz builds libFuzzer harnesses: it needs CC=clang, not $(CC))
endif
BUILD   := build/fuzz
endif

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla
ifneq ($(filter true 1,$(CI) $(STRICT)),)
WARN    += -Werror
endif
BASEARCH ?= -march=x86-64-v2
# -ffp-contract=off: no a*b+c fused behind the code's back, so a C loop in an FMA-enabled
# ISA file rounds as its scalar twin does (bit-identity tests). gcc's ISO C mode (-std=c11)
# already defaults to it; clang's default ("on") fused the avx2 rope and attention tails.
CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE -g -pthread $(WARN) -fno-strict-aliasing -ffp-contract=off \
                 -I core
# float-cast-overflow is listed on its own: gcc's -fsanitize=undefined leaves it
# out, so an out-of-range or NaN float -> int cast would pass unseen.
SAN_ASAN := address,undefined,float-cast-overflow
ifeq ($(MODE),asan)
OPT     := -O1 -fsanitize=$(SAN_ASAN) -fno-sanitize-recover=all -fno-omit-frame-pointer
LDSAN   := -fsanitize=$(SAN_ASAN)
else ifeq ($(MODE),fuzz)
# The library with coverage hooks for libFuzzer (tests/fuzz/, make fuzz); every sanitizer
# report halts (NaN activations are defined since issue 13, so no cast is held back).
OPT     := -O1 -fsanitize=fuzzer-no-link,$(SAN_ASAN) -fno-sanitize-recover=all \
           -fno-omit-frame-pointer
LDSAN   := -fsanitize=fuzzer,$(SAN_ASAN)
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
# server/ (tessera serve) sits on the public API and links these; the library does not.
SERVER_LIBS := -lmicrohttpd -lcjson

# A build on a machine without the packages says which are missing, before any compile.
# (make run / make test install them first: their own goal is not checked, their sub-make is.)
CHECK_GOALS := all tools bench-build fuzz-build tsan bundle
ifneq ($(if $(MAKECMDGOALS),$(filter $(CHECK_GOALS) build/%,$(MAKECMDGOALS)),all),)
MISSING_PKGS := $(shell sh tools/install-deps.sh --check)
ifneq ($(strip $(MISSING_PKGS)),)
$(error missing Debian packages:$(MISSING_PKGS). Install them with `make deps` (as root, or \
with sudo), or: apt-get install$(MISSING_PKGS))
endif
endif

# Per-ISA flags by directory (BLIS/tinyBLAS style: one source per ISA).
AVX2_FLAGS   := -mavx2 -mfma -mf16c -mbmi2
AVX512_FLAGS := $(AVX2_FLAGS) -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni

LIB_SRC := $(wildcard core/*.c quant/*.c sched/*.c simd/*.c simd/scalar/*.c \
                      simd/x86/avx2/*.c simd/x86/avx512/*.c simd/x86/amx/*.c)
TOOL_SRC  := $(wildcard tools/*.c)
SERVER_SRC := $(wildcard server/*.c)
TEST_SRC  := $(wildcard tests/*.c)
BENCH_SRC := $(wildcard bench/*.c)

LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
TOOL_OBJ  := $(TOOL_SRC:%.c=$(BUILD)/%.o)
SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ  := $(TEST_SRC:%.c=$(BUILD)/%.o)
BENCH_OBJ := $(BENCH_SRC:%.c=$(BUILD)/%.o)

LIB   := $(BUILD)/libtessera.a
TOOL  := $(BUILD)/tessera
TESTS := $(BUILD)/tessera-tests

.PHONY: all deps tools run test check asan tsan bench bench-build clean check-deps native
.PHONY: check-arm deps-arm bundle check-rss deps-clang fuzz fuzz-build
all: $(TOOL) $(TESTS)
tools: $(TOOL)

# clang's UBSan on the unrolled zmm kernels costs minutes a file, mostly its pointer-overflow
# check: simd/x86/avx512/gemm_r16.c took 342 s with ASan+UBSan, 54 s with ASan alone, 725 s
# with the fuzzer's coverage hooks too (clang 14 -O1, this 2-core box, 2026-12; gcc: seconds).
# gcc's make test keeps UBSan on them, so a clang build gives them ASan only, and MODE=fuzz no
# coverage hooks either: their branches follow shapes, not file bytes.
ZMM_NOSAN :=
ifneq ($(filter clang%,$(CC_NAME)),)
ifeq ($(MODE),asan)
ZMM_NOSAN := -fno-sanitize=undefined
else ifeq ($(MODE),fuzz)
ZMM_NOSAN := -fno-sanitize=undefined,fuzzer-no-link
endif
endif

$(BUILD)/simd/x86/avx2/%.o: EXTRA := $(AVX2_FLAGS)
$(BUILD)/simd/x86/avx512/%.o: EXTRA := $(AVX512_FLAGS) $(ZMM_NOSAN)
$(BUILD)/simd/x86/amx/%.o: EXTRA := $(AVX512_FLAGS) -mamx-tile -mamx-int8 -mamx-bf16 $(ZMM_NOSAN)
# The amx kernels on emulated tiles (simd/x86/amx/tile.h), for hosts without AMX.
$(BUILD)/tests/amx_emul.o: EXTRA := $(AVX512_FLAGS) $(ZMM_NOSAN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EXTRA) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# DT_RPATH $ORIGIN (also for the libraries' own dependencies): the binary runs
# on another machine with its shared libraries copied next to it (make bundle).
$(TOOL): $(TOOL_OBJ) $(SERVER_OBJ) $(LIB)
	$(CC) $(CFLAGS) $(LDSAN) -o $@ $(TOOL_OBJ) $(SERVER_OBJ) $(LIB) $(LDLIBS) $(SERVER_LIBS) \
	  -Wl,--disable-new-dtags,-rpath,'$$ORIGIN'

$(TESTS): $(TEST_OBJ) $(SERVER_OBJ) $(LIB)
	$(CC) $(CFLAGS) $(LDSAN) -o $@ $(TEST_OBJ) $(SERVER_OBJ) $(LIB) $(LDLIBS) $(SERVER_LIBS)

# Each bench/<name>.c is its own program: build/<mode>/<name>.
BENCHES := $(BENCH_SRC:bench/%.c=$(BUILD)/%)
$(BUILD)/bench_%: $(BUILD)/bench/bench_%.o $(LIB)
	$(CC) $(CFLAGS) $(LDSAN) -o $@ $< $(LIB) $(LDLIBS)
# bench_load (the HTTP load driver) uses none of the library, only libcurl and cJSON.
$(BUILD)/bench_load: LDLIBS += -lcurl -lcjson
bench-build: $(BENCHES)

# make bench: the kernel benches, each variant validated against its scalar
# twin before it is timed (bench_kernels refuses to time a mismatch), then
# the pool dispatch bench. CSV on stdout (STYLE section 12). Timing on a
# shared box is noise: pin, idle it, and see bench/RESULTS.md for method.
bench: deps
	@$(MAKE) --no-print-directory MODE=release bench-build
	$(call builddir,release)/bench_kernels --reps 5
	$(call builddir,release)/bench_pool

# CC=clang also needs clang and its sanitizer runtimes (deps-clang).
deps:
	@sh tools/install-deps.sh
	@$(if $(filter clang%,$(CC_NAME)),$(MAKE) --no-print-directory deps-clang,:)

# The main job: the embedded default model (../shared/models/stories260K.gguf
# when present, else one generated here), summarised and run.
run: deps
	@$(MAKE) --no-print-directory MODE=release tools
	@sh tools/run-default.sh $(call builddir,release)/tessera

# The suite runs under ASan+UBSan; the CLI it drives is the ASan build too.
test: deps
	@$(MAKE) --no-print-directory MODE=asan all
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  TESSERA_BIN=$(call builddir,asan)/tessera $(call builddir,asan)/tessera-tests $(T)

check: test

asan: test

tsan:
	@$(MAKE) --no-print-directory MODE=tsan all
	TSAN_OPTIONS=halt_on_error=1 TESSERA_BIN=$(call builddir,tsan)/tessera \
	  $(call builddir,tsan)/tessera-tests \
	  pool mm_glu mm_threads engine numa batch_invariance_dense batch_step_checks \
	  server_parallel_slots_busy server_cancel_frees_the_sequence server_same_seed_same_text \
	  gdn_batch_invariance

check-deps:
	@sh tools/check-deps.sh

# The dry-run memory estimate against measured peak RSS: the release build
# (sanitizers' shadow memory makes RSS incomparable, so make test skips it).
check-rss: deps
	@$(MAKE) --no-print-directory MODE=release all
	@TESSERA_BIN=$(call builddir,release)/tessera $(call builddir,release)/tessera-tests estimate_matches

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

# ---- fuzz: libFuzzer harnesses (tests/fuzz/README) ----
# clang only (MODE=fuzz): the library and the harnesses go to build/fuzz/ with coverage hooks,
# ASan, UBSan and float-cast-overflow; fuzz_tokenizer also links tools/cli.c and
# tools/cmd_gen.c (its generated vocabulary). make fuzz runs each harness for FUZZ_TIME seconds
# on a fresh copy of its committed seeds (tests/fuzz/corpus/<name>/ is never written) in
# build/fuzz/corpus/<name>/. Any finding fails it: a crash, a failed check, a leak, a sanitizer
# report, an input slower than FUZZ_TIMEOUT seconds or a process over FUZZ_RSS_MB (a single
# malloc that large too). The reproducer goes to build/fuzz/artifacts/ (emptied first), the
# log to build/fuzz/<name>.log; rerun one with build/fuzz/fuzz_<name> <file>. The last line
# sums the harnesses like the test runners' ("3 passed, 0 failed, 0 skipped"). fuzz_request
# (the server's request parser) links server/request.c and cJSON, not the library's engine.
FUZZ_TIME    ?= 60
FUZZ_TIMEOUT ?= 10
FUZZ_RSS_MB  ?= 2048
# harness:max input bytes. The gguf seeds are 7-16 KB (tessera gen --shape micro); request
# bodies of 64 KiB reach every limit but the 1M-id one (tests/test_request.c covers that).
FUZZ_RUNS    := gguf:32768 tokenizer:4096 request:65536
FUZZ_SRC     := $(wildcard tests/fuzz/*.c)
FUZZ_OBJ     := $(FUZZ_SRC:%.c=$(BUILD)/%.o)
FUZZERS      := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/%)

$(BUILD)/fuzz_tokenizer: $(BUILD)/tools/cli.o $(BUILD)/tools/cmd_gen.o
$(BUILD)/fuzz_request: $(BUILD)/server/request.o
$(BUILD)/fuzz_request: LDLIBS += -lcjson
$(BUILD)/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(LIB)
	$(CC) $(CFLAGS) $(LDSAN) -o $@ $(filter %.o,$^) $(LIB) $(LDLIBS)
fuzz-build: $(FUZZERS)
# Built only as the harnesses' prerequisites: without this make deletes them as intermediates.
.SECONDARY: $(FUZZ_OBJ)

# clang and its sanitizer and libFuzzer runtimes (Debian 12's clang is 14), only what is
# missing (as deps-arm).
deps-clang:
	@missing=""; for p in clang libclang-rt-14-dev; do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

fuzz: deps deps-clang
	@$(MAKE) --no-print-directory MODE=fuzz CC=clang fuzz-build
	@rm -rf build/fuzz/artifacts; mkdir -p build/fuzz/artifacts
	@pass=0; fail=0; for run in $(FUZZ_RUNS); do n=$${run%%:*}; max=$${run##*:}; \
	  c=build/fuzz/corpus/$$n; rm -rf $$c; mkdir -p $$c; \
	  cp tests/fuzz/corpus/$$n/* $$c/; \
	  echo "== fuzz_$$n: $(FUZZ_TIME) s, inputs up to $$max bytes"; \
	  if UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	     build/fuzz/fuzz_$$n $$c -max_total_time=$(FUZZ_TIME) -timeout=$(FUZZ_TIMEOUT) \
	       -rss_limit_mb=$(FUZZ_RSS_MB) -max_len=$$max -print_final_stats=1 \
	       -artifact_prefix=build/fuzz/artifacts/$$n- > build/fuzz/$$n.log 2>&1; then \
	    pass=$$((pass + 1)); grep -E '^(Done|stat::number_of_executed_units)' build/fuzz/$$n.log; \
	  else \
	    fail=$$((fail + 1)); tail -n 40 build/fuzz/$$n.log; echo "fuzz_$$n: FAILED"; \
	  fi; done; \
	echo "$$pass passed, $$fail failed, 0 skipped"; [ $$fail = 0 ]

# build/bundle/: the release tessera plus every shared library it loads except
# the C runtime's own, for running it elsewhere (e.g. the many-core NUMA sweep:
# build/bundle/tessera bench -m M --sweep 1,2,4,8,16 --sweep-csv s.csv --sweep-svg s.svg).
bundle:
	@$(MAKE) --no-print-directory MODE=release tools
	@rm -rf build/bundle && mkdir -p build/bundle
	@cp $(call builddir,release)/tessera build/bundle/
	@{ ldd $(call builddir,release)/tessera; ldd "$$($(CC) -print-file-name=libopenblas.so.0)"; \
	  echo "x => $$($(CC) -print-file-name=libopenblas.so.0) y"; } | \
	  awk '/=> \// {print $$3}' | sort -u | \
	  grep -Ev '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*)\.so' | \
	  while read -r l; do cp -L "$$l" build/bundle/; done
	@ls build/bundle

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(SERVER_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BENCH_OBJ:.o=.d) $(ARM_OBJ:.o=.d)
-include $(FUZZ_OBJ:.o=.d)
