# blocksim: one non-recursive Makefile.
#
#   make            debug build of the blocksim binary and the test runner
#   make run        replay the bundled default trace under faults, print a report
#   make check      unit tests (debug and ASan+UBSan), golden traces, CLI tests,
#                   dirty bitmaps and quorum cross-checked against QEMU, NBD interop
#   make valgrind   unit tests and a replay under valgrind memcheck
#   make coverage   lcov HTML report of what the tests reach (build/cov/html)
#   make bench      replay throughput and memory figures (release build)
#   make fuzz-smoke each libFuzzer target briefly (FUZZ_SECONDS), the canary must crash
#   make fuzz       longer campaigns (600 s a target)
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

# Debian packages behind these: libjansson-dev, libxxhash-dev, zlib1g-dev, libnbd-dev, check.
PKG_LIBS := jansson libxxhash zlib libnbd
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
OPT_fuzz    := -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
               -fno-sanitize-recover=all
OPT := $(OPT_$(CONFIG))
ifeq ($(OPT),)
$(error unknown CONFIG '$(CONFIG)': use debug, release, asan, cov or fuzz)
endif

CFLAGS := -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(PKG_CFLAGS) -MMD -MP
LDFLAGS := $(filter -fsanitize=% --coverage,$(OPT))
LDLIBS := $(PKG_LDLIBS) -lm

LIB_SRCS := $(sort $(wildcard ref/*.c sim/*/*.c props/*.c))
CLI_SRCS := $(sort $(wildcard cli/*.c))
TEST_SRCS := $(sort $(wildcard tests/*.c tests/ref/*.c tests/sim/*.c tests/props/*.c))
TEST_SRCS := $(filter-out tests/bench_replay.c,$(TEST_SRCS))

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/%.o)
TEST_OBJS := $(TEST_SRCS:%.c=$(BUILD)/%.o)

# Fuzz targets: fuzz/fuzz_<name>.c. CONFIG=fuzz links them with libFuzzer;
# every other configuration links them with fuzz/standalone.c, a replayer.
FUZZ_TARGETS := $(sort $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c)))
# The targets that fuzz the code (the canary proves the harness catches).
FUZZ_REAL := $(filter-out canary,$(FUZZ_TARGETS))
FUZZ_SECONDS ?= 10
# The smoke run is a gate: a fixed libFuzzer seed makes it repeatable.
# `make fuzz` campaigns leave it unset, so each explores anew.
FUZZ_SEED ?= -seed=1
FUZZ_BINS := $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
FUZZ_STANDALONE := $(FUZZ_TARGETS:%=$(BUILD)/fuzz_%_standalone)

BIN := $(BUILD)/blocksim
TESTS := $(BUILD)/check_all
BENCH := $(BUILD)/bench_replay
LIBA := $(BUILD)/libblocksim.a

.PHONY: slurm-check install uninstall install-check html-check oracle-check all run check test unit cli-tests qemu-xcheck nbd-interop golden valgrind coverage bench fuzz-smoke \
        fuzz fuzz-replay tidy format clean bootstrap props-quick cfl-check afl-smoke

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

$(FUZZ_STANDALONE): $(BUILD)/fuzz_%_standalone: $(BUILD)/fuzz/fuzz_%.o \
                                               $(BUILD)/fuzz/standalone.o $(LIBA)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(FUZZ_BINS): build/fuzz/fuzz_%: build/fuzz/fuzz/fuzz_%.o build/fuzz/libblocksim.a
	clang -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)

# ---- user-facing targets ----

DEFAULT_TRACE := traces/native/default.trace

run: bootstrap
	@$(MAKE) --no-print-directory CONFIG=release build/release/blocksim
	build/release/blocksim replay $(DEFAULT_TRACE)

# Fuzz smoke first; then the unit tests in the debug build, the bundled and
# regression traces and the command-line tests; last the unit tests again
# under ASan+UBSan (so the run closes on Check's summary line).
check: bootstrap
	@$(MAKE) --no-print-directory fuzz-smoke
	@$(MAKE) --no-print-directory cfl-check afl-smoke
	@$(MAKE) --no-print-directory CONFIG=debug unit cli-tests fuzz-replay qemu-xcheck nbd-interop \
	    slurm-check install-check html-check oracle-check
	@$(MAKE) --no-print-directory CONFIG=asan fuzz-replay unit

test: check

# .clusterfuzzlite/build.sh run as ClusterFuzzLite runs it (CC, CFLAGS,
# LIB_FUZZING_ENGINE, OUT set); each built target passes its seed corpus.
cfl-check: bootstrap
	bash tests/cfl_build.sh

# The same targets built for AFL++ (afl-clang-fast, its libFuzzer driver)
# and fuzzed AFL_SECONDS (4) each; the canary must be found.
afl-smoke: bootstrap
	bash tests/afl_smoke.sh

unit: $(TESTS)
	$(TESTS)

cli-tests: $(BIN) $(BUILD)/fuzz_canary_standalone
	bash tests/cli_test.sh $(BIN)

# Dirty bitmaps against QEMU's own (qcow2, qemu-io, qemu-nbd -B, nbdinfo);
# quorum verdicts, data and repairs against QEMU's quorum through qemu-io,
# and the same check run with a planted tie bug must disagree.
QEMU_XCHECK_CASES ?= 48
QEMU_QUORUM_CASES ?= 120
QEMU_JOBS_CASES ?= 24
QEMU_COLO_CASES ?= 32
qemu-xcheck: $(BIN)
	python3 tests/qemu_bitmaps.py $(BIN) $(QEMU_XCHECK_CASES)
	python3 tests/qemu_quorum.py $(BIN) $(QEMU_QUORUM_CASES)
	python3 tests/qemu_quorum.py $(BIN) $(QEMU_QUORUM_CASES) --mutant quorum-tie-low
	python3 tests/qemu_jobs.py $(BIN) $(QEMU_JOBS_CASES)
	python3 tests/qemu_jobs.py $(BIN) $(QEMU_JOBS_CASES) --mutant backup-cbw-late
	python3 tests/qemu_jobs.py $(BIN) $(QEMU_JOBS_CASES) --mutant mirror-cancel-forced
	python3 tests/qemu_colo.py $(BIN) $(QEMU_COLO_CASES)
	python3 tests/qemu_colo.py $(BIN) $(QEMU_COLO_CASES) --mutant repl-failover-active-only
	python3 tests/qemu_colo.py $(BIN) $(QEMU_COLO_CASES) --mutant repl-primary-returns-error

# make install [PREFIX=/usr/local] [DESTDIR=]: the release binary, its man
# page and bash completion (both made from the binary's own help texts, so
# they never drift) and the bundled traces under share/blocksim.
PREFIX ?= /usr/local
INSTALL_DIRS := bin share/man/man1 share/bash-completion/completions share/blocksim
install: bootstrap
	@$(MAKE) --no-print-directory CONFIG=release build/release/blocksim
	bash scripts/manpage.sh build/release/blocksim build/release/blocksim.1
	bash scripts/completion.sh build/release/blocksim >build/release/blocksim.bash
	for d in $(INSTALL_DIRS); do install -d "$(DESTDIR)$(PREFIX)/$$d"; done
	install -m 755 build/release/blocksim "$(DESTDIR)$(PREFIX)/bin/blocksim"
	install -m 644 build/release/blocksim.1 "$(DESTDIR)$(PREFIX)/share/man/man1/blocksim.1"
	install -m 644 build/release/blocksim.bash \
	    "$(DESTDIR)$(PREFIX)/share/bash-completion/completions/blocksim"
	cp -R traces "$(DESTDIR)$(PREFIX)/share/blocksim/"

uninstall:
	rm -f "$(DESTDIR)$(PREFIX)/bin/blocksim" "$(DESTDIR)$(PREFIX)/share/man/man1/blocksim.1" \
	    "$(DESTDIR)$(PREFIX)/share/bash-completion/completions/blocksim"
	rm -rf "$(DESTDIR)$(PREFIX)/share/blocksim"

# blocksim oracle through libnbd against qemu-nbd (raw, qcow2), nbdkit
# (memory, file) and blocksim's own nbd-serve; a lossy and a failing target.
oracle-check: $(BIN)
	bash tests/oracle_test.sh $(BIN)

# A failing run's HTML page and the campaign index in headless chromium.
html-check: $(BIN)
	bash tests/html_test.sh $(BIN)

# Install into a temporary DESTDIR, run the installed binary on an installed
# trace, read its man page, complete a command, uninstall (part of make check).
install-check:
	bash tests/install_test.sh

# A single-node Slurm cluster from Debian's packages, in a temporary
# directory: a four-task campaign array and its merge job must find the
# failures a local run of the same shards finds (tests/slurm_test.sh).
slurm-check: $(BIN)
	bash tests/slurm_test.sh $(BIN)

# blocksim's NBD server and client against libnbd tools, qemu-io/qemu-img,
# qemu-nbd and nbdkit over Unix sockets.
nbd-interop: $(BIN)
	bash tests/nbd_interop.sh $(BIN)

# Every fuzz target's corpus (and the bundled traces) through the replayer.
fuzz-replay: $(FUZZ_STANDALONE)
	@for t in $(FUZZ_REAL); do \
	    echo "fuzz-replay: $$t"; \
	    $(BUILD)/fuzz_$${t}_standalone fuzz/corpus/$$t || exit 1; done
	$(BUILD)/fuzz_trace_standalone traces/native
	$(BUILD)/fuzz_import_fio_standalone traces/fio
	$(BUILD)/fuzz_import_blkparse_standalone traces/blkparse
	$(BUILD)/fuzz_import_dmlog_standalone traces/dm-log-writes
	$(BUILD)/fuzz_import_msr_standalone traces/csv/msr-sample.csv
	$(BUILD)/fuzz_import_alibaba_standalone traces/csv/alibaba-sample.csv
	$(BUILD)/fuzz_import_tencent_standalone traces/csv/tencent-sample.csv

props-quick: check

valgrind: bootstrap
	@$(MAKE) --no-print-directory CONFIG=debug all
	CK_FORK=no BLOCKSIM_UNDER_VALGRIND=1 valgrind --error-exitcode=1 --leak-check=full \
	    --errors-for-leak-kinds=all -q build/debug/check_all
	BLOCKSIM_NO_MEMCACHE=1 valgrind --error-exitcode=1 --leak-check=full \
	    --errors-for-leak-kinds=all -q build/debug/blocksim replay --quiet $(DEFAULT_TRACE)
	@$(MAKE) --no-print-directory CONFIG=debug $(FUZZ_STANDALONE)
	for t in $(FUZZ_REAL); do \
	    BLOCKSIM_NO_MEMCACHE=1 valgrind --error-exitcode=1 --leak-check=full -q \
	        build/debug/fuzz_$${t}_standalone fuzz/corpus/$$t || exit 1; done

coverage: bootstrap
	@rm -rf build/cov
	@$(MAKE) --no-print-directory CONFIG=cov all build/cov/fuzz_canary_standalone
	build/cov/check_all
	bash tests/cli_test.sh build/cov/blocksim
	lcov --quiet --capture --directory build/cov --output-file build/cov/lcov.info
	lcov --quiet --remove build/cov/lcov.info '/usr/*' --output-file build/cov/lcov.info
	genhtml --quiet build/cov/lcov.info --output-directory build/cov/html
	@lcov --summary build/cov/lcov.info
	@echo "coverage report: build/cov/html/index.html"

# Every figure, then the goals beside them (scripts/bench_summary.py reads
# the run's own output, kept in build/release/bench.log).
bench: bootstrap
	@$(MAKE) --no-print-directory CONFIG=release build/release/bench_replay build/release/blocksim
	@bash -c 'set -o pipefail; { set -ex; \
	    build/release/bench_replay; \
	    bash scripts/bench_qemu_io.sh build/release/blocksim; \
	    echo "check in fork mode, a worker a core (goal: 1k trials a CPU second):"; \
	    build/release/blocksim check crash read-your-writes quorum-vote overlay \
	        mirror-converge colo-view colo-failover --trials 5000 --quiet; \
	    echo "explore the default trace'"'"'s workload (goal: under a minute):"; \
	    build/release/blocksim explore $(DEFAULT_TRACE) --quiet; \
	} 2>&1 | tee build/release/bench.log'
	@python3 scripts/bench_summary.py build/release/bench.log

# Each target fuzzes for FUZZ_SECONDS from its corpus (new inputs go to a
# scratch directory, never into fuzz/corpus); the canary must be caught.
fuzz-smoke: bootstrap
	@$(MAKE) --no-print-directory CONFIG=fuzz $(FUZZ_BINS)
	@for t in $(FUZZ_REAL); do \
	    rm -rf build/fuzz/scratch-$$t && mkdir -p build/fuzz/scratch-$$t && \
	    echo "fuzz-smoke: $$t for $(FUZZ_SECONDS)s" && \
	    build/fuzz/fuzz_$$t $$([ -s fuzz/dict/$$t.dict ] && echo -dict=fuzz/dict/$$t.dict) \
	        $$(sed -n 's/^\([a-z_]*\) = \(.*\)/-\1=\2/p' fuzz/fuzz_$$t.options | grep -v '^-dict=') \
	        -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $(FUZZ_SEED) \
	        -artifact_prefix=build/fuzz/crash-$$t- \
	        build/fuzz/scratch-$$t fuzz/corpus/$$t 2>build/fuzz/log-$$t.txt \
	        || { tail -40 build/fuzz/log-$$t.txt; exit 1; }; \
	    grep -E "^#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec" \
	        build/fuzz/log-$$t.txt; \
	done
	@if build/fuzz/fuzz_canary -max_total_time=60 -artifact_prefix=build/fuzz/canary- \
	        fuzz/corpus/canary >build/fuzz/log-canary.txt 2>&1; then \
	    echo "fuzz-smoke: the canary target was NOT caught"; exit 1; \
	else echo "fuzz-smoke: canary caught, the harness detects failures"; fi

fuzz: bootstrap
	@$(MAKE) --no-print-directory FUZZ_SECONDS=600 FUZZ_SEED= fuzz-smoke

tidy:
	bash scripts/tidy.sh

format:
	clang-format -i $(LIB_SRCS) $(CLI_SRCS) $(TEST_SRCS) $(wildcard ref/*.h sim/*/*.h cli/*.h tests/*.h props/*.h)

clean:
	rm -rf build

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(TEST_OBJS:.o=.d) $(wildcard $(BUILD)/fuzz/*.d) \
         $(BUILD)/tests/bench_replay.d
