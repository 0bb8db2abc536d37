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
LDLIBS  := -lopenblas -lhwloc -lnuma -lpcre2-8 -lm -lpthread

# Per-ISA flags by directory (BLIS/tinyBLAS style: one source per ISA).
AVX2_FLAGS   := -mavx2 -mfma -mf16c -mbmi2
AVX512_FLAGS := $(AVX2_FLAGS) -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni

LIB_SRC := $(wildcard core/*.c quant/*.c sched/*.c simd/*.c simd/scalar/*.c \
                      simd/x86/avx2/*.c simd/x86/avx512/*.c)
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
all: $(TOOL) $(TESTS)
tools: $(TOOL)

$(BUILD)/simd/x86/avx2/%.o: EXTRA := $(AVX2_FLAGS)
$(BUILD)/simd/x86/avx512/%.o: EXTRA := $(AVX512_FLAGS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EXTRA) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(TOOL): $(TOOL_OBJ) $(LIB)
	$(CC) $(CFLAGS) $(LDSAN) -o $@ $(TOOL_OBJ) $(LIB) $(LDLIBS)

$(TESTS): $(TEST_OBJ) $(LIB)
	$(CC) $(CFLAGS) $(LDSAN) -o $@ $(TEST_OBJ) $(LIB) $(LDLIBS)

# Each bench/<name>.c is its own program: build/<mode>/<name>.
BENCHES := $(BENCH_SRC:bench/%.c=$(BUILD)/%)
$(BUILD)/bench_%: $(BUILD)/bench/bench_%.o $(LIB)
	$(CC) $(CFLAGS) $(LDSAN) -o $@ $< $(LIB) $(LDLIBS)
bench-build: $(BENCHES)

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

tsan:
	@$(MAKE) --no-print-directory MODE=tsan all
	TSAN_OPTIONS=halt_on_error=1 TESSERA_BIN=build/tsan/tessera build/tsan/tessera-tests pool

check-deps:
	@sh tools/check-deps.sh

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BENCH_OBJ:.o=.d)
