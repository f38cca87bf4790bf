# blocksim: one non-recursive Makefile.
#
#   make            debug build of the blocksim binary and the test runner
#   make run        replay the bundled default trace under faults, print a report
#   make check      unit tests (debug and ASan+UBSan), golden traces, CLI tests
#   make valgrind   unit tests and a replay under valgrind memcheck
#   make coverage   lcov HTML report of what the tests reach (build/cov/html)
#   make bench      replay throughput and memory figures (release build)
#   make fuzz-smoke libFuzzer targets (none yet: they arrive with the fuzz work)
#   make tidy       style lint (scripts/tidy.sh); make format: clang-format
#
# CONFIG picks the build configuration; each has its own output directory
# under build/: debug (default), release, asan (ASan+UBSan), cov (gcov), fuzz
# (clang, libFuzzer instrumentation with ASan+UBSan; the targets themselves
# arrive with the fuzz work).
# WERROR=1 turns warnings into errors (CI sets it).

CONFIG ?= debug
BUILD := build/$(CONFIG)
CC := $(if $(filter fuzz,$(CONFIG)),clang,gcc)

# Debian packages behind these: libjansson-dev, libxxhash-dev, zlib1g-dev, check.
PKG_LIBS := jansson libxxhash zlib
PKG_CFLAGS = $(shell pkg-config --cflags $(PKG_LIBS) 2>/dev/null)
PKG_LDLIBS = $(shell pkg-config --libs $(PKG_LIBS) 2>/dev/null)
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LDLIBS = $(shell pkg-config --libs check 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla \
        -Wformat=2 -Wundef
ifeq ($(WERROR),1)
WARN += -Werror
endif

OPT_debug   := -O1 -g
OPT_release := -O2 -g
OPT_asan    := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
               -fno-sanitize-recover=all
OPT_cov     := -O0 -g --coverage
OPT_fuzz    := -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
OPT := $(OPT_$(CONFIG))
ifeq ($(OPT),)
$(error unknown CONFIG '$(CONFIG)': use debug, release, asan, cov or fuzz)
endif

CFLAGS := -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(PKG_CFLAGS) -MMD -MP
LDFLAGS := $(filter -fsanitize=% --coverage,$(OPT))
LDLIBS := $(PKG_LDLIBS) -lm

LIB_SRCS := $(sort $(wildcard ref/*.c sim/*.c))
CLI_SRCS := $(sort $(wildcard cli/*.c))
TEST_SRCS := $(sort $(wildcard tests/*.c tests/ref/*.c tests/sim/*.c))
TEST_SRCS := $(filter-out tests/bench_replay.c,$(TEST_SRCS))

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/%.o)
TEST_OBJS := $(TEST_SRCS:%.c=$(BUILD)/%.o)

BIN := $(BUILD)/blocksim
TESTS := $(BUILD)/check_all
BENCH := $(BUILD)/bench_replay
LIBA := $(BUILD)/libblocksim.a

.PHONY: all run check test unit cli-tests golden valgrind coverage bench fuzz-smoke \
        tidy format clean bootstrap props-quick

all: $(BIN) $(TESTS)

bootstrap:
	@bash scripts/bootstrap.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/tests/%.o: CFLAGS += $(CHECK_CFLAGS)

$(LIBA): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(CLI_OBJS) $(LIBA)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(TESTS): $(TEST_OBJS) $(LIBA)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LDLIBS) $(LDLIBS)

$(BENCH): $(BUILD)/tests/bench_replay.o $(LIBA)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# ---- user-facing targets ----

DEFAULT_TRACE := traces/native/default.trace

run: bootstrap
	@$(MAKE) --no-print-directory CONFIG=release build/release/blocksim
	build/release/blocksim replay $(DEFAULT_TRACE)

# The unit tests in the debug build and again under ASan+UBSan, then the
# golden traces and the command-line tests against the debug binary.
check: bootstrap
	@$(MAKE) --no-print-directory CONFIG=debug unit cli-tests
	@$(MAKE) --no-print-directory CONFIG=asan unit

test: check

unit: $(TESTS)
	$(TESTS)

cli-tests: $(BIN)
	bash tests/cli_test.sh $(BIN)

props-quick: check

valgrind: bootstrap
	@$(MAKE) --no-print-directory CONFIG=debug all
	CK_FORK=no valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=all \
	    -q build/debug/check_all
	valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=all -q \
	    build/debug/blocksim replay --quiet $(DEFAULT_TRACE)

coverage: bootstrap
	@rm -rf build/cov
	@$(MAKE) --no-print-directory CONFIG=cov all
	build/cov/check_all
	bash tests/cli_test.sh build/cov/blocksim
	lcov --quiet --capture --directory build/cov --output-file build/cov/lcov.info
	lcov --quiet --remove build/cov/lcov.info '/usr/*' --output-file build/cov/lcov.info
	genhtml --quiet build/cov/lcov.info --output-directory build/cov/html
	@lcov --summary build/cov/lcov.info
	@echo "coverage report: build/cov/html/index.html"

bench: bootstrap
	@$(MAKE) --no-print-directory CONFIG=release build/release/bench_replay
	build/release/bench_replay

fuzz-smoke:
	@echo "fuzz-smoke: no fuzz targets yet (they arrive with the property/fuzz work)"

tidy:
	bash scripts/tidy.sh

format:
	clang-format -i $(LIB_SRCS) $(CLI_SRCS) $(TEST_SRCS) $(wildcard ref/*.h sim/*.h cli/*.h tests/*.h)

clean:
	rm -rf build

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(TEST_OBJS:.o=.d)
