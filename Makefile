# spoe-cache: one plain Makefile.
#   make            build spoe-cache-agent and spoe-cache-ctl
#   make test       every test tier (unit+ASan/UBSan, wire, end-to-end, fuzz smoke)
#   make run        the whole stack on 127.0.0.1 (3 memcached, agent, HAProxy, origin)
#   make bench      benchmarks (never part of make test)
#   make fuzz       libFuzzer targets (clang)
#   make install    PREFIX=/usr/local DESTDIR=
#   make deps       apt-get install everything the above need

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
PKGS    := libevent libevent_openssl libevent_pthreads libmemcached libconfig openssl
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes
override CFLAGS += -std=c11 -D_GNU_SOURCE -pthread $(WARN) $(PKG_CFLAGS) -Iagent -MMD -MP
LDLIBS  += $(PKG_LIBS) -pthread -lm

SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

MAINS     := agent/agent.c agent/ctl.c
CORE_SRC  := $(filter-out $(MAINS),$(wildcard agent/*.c))
CORE_OBJ  := $(CORE_SRC:agent/%.c=build/obj/%.o)
ASAN_OBJ  := $(CORE_SRC:agent/%.c=build/asan/%.o)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=build/asan/tests/%)
TOOL_SRC  := $(wildcard tests/tools/*.c)
TOOL_BIN  := $(TOOL_SRC:tests/tools/%.c=build/tools/%)
FUZZ_SRC  := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN  := $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)

BINS := spoe-cache-agent spoe-cache-ctl
DEPS_STAMP := build/.deps-ok

.PHONY: all test run bench fuzz fuzz-run install deps check-deps clean asan unit tools
all: $(BINS)

spoe-cache-agent: build/obj/agent.o $(CORE_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
spoe-cache-ctl: build/obj/ctl.o $(CORE_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

build/obj/%.o: agent/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

# The same core under AddressSanitizer + UndefinedBehaviorSanitizer, for the
# unit tests and for the agent the wire tests drive.
build/asan/%.o: agent/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -O1 $(SAN) -c -o $@ $<
build/asan/spoe-cache-agent: build/asan/agent.o $(ASAN_OBJ)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)
build/asan/spoe-cache-ctl: build/asan/ctl.o $(ASAN_OBJ)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)
# -MMD cannot describe a compile-and-link of several inputs: depend on the
# headers explicitly.
build/asan/tests/%: tests/unit/%.c $(ASAN_OBJ) $(wildcard tests/unit/*.h agent/*.h)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -O1 $(SAN) -Itests/unit -o $@ $(filter %.c %.o,$^) $(LDLIBS)
build/tools/%: tests/tools/%.c $(CORE_OBJ) $(wildcard agent/*.h)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS)

asan: build/asan/spoe-cache-agent build/asan/spoe-cache-ctl $(UNIT_BIN)
unit: $(UNIT_BIN)
tools: $(TOOL_BIN)

# libFuzzer targets: clang only, each links the core built with clang.
FUZZ_CC    ?= clang
FUZZ_FLAGS := -g -O1 -std=c11 -D_GNU_SOURCE -Iagent $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined
build/fuzz/%: fuzz/%.c $(CORE_SRC)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $^ $(LDLIBS)
fuzz: $(FUZZ_BIN)
FUZZ_SECONDS ?= 60
fuzz-run: fuzz
	@for f in $(FUZZ_BIN); do n=$$(basename $$f); mkdir -p build/fuzz/corpus-$$n; \
	  cp -n fuzz/corpus/$$n/* build/fuzz/corpus-$$n/ 2>/dev/null; \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/fuzz/lsan.supp \
	  $$f -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/$$n- build/fuzz/corpus-$$n || exit 1; done

$(DEPS_STAMP):
	@$(MAKE) --no-print-directory check-deps || $(MAKE) --no-print-directory deps
	@mkdir -p build && touch $@

check-deps:
	@scripts/deps.sh check

deps:
	@scripts/deps.sh install

test: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory all asan tools $(if $(shell command -v $(FUZZ_CC)),fuzz)
	@python3 tests/run.py

run: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory all
	@python3 scripts/run_stack.py

bench: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory all
	@python3 tests/bench/bench.py
	@python3 tests/bench/pool_bench.py

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/spoe-cache/haproxy-conf \
	  $(DESTDIR)$(PREFIX)/share/spoe-cache/lua-glue $(DESTDIR)/etc/spoe-cache \
	  $(DESTDIR)$(PREFIX)/lib/systemd/system $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 man/spoe-cache-agent.8 man/spoe-cache-ctl.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 0644 haproxy-conf/* $(DESTDIR)$(PREFIX)/share/spoe-cache/haproxy-conf/
	install -m 0644 lua-glue/*.lua $(DESTDIR)$(PREFIX)/share/spoe-cache/lua-glue/
	install -m 0644 examples/spoe-cache.conf $(DESTDIR)/etc/spoe-cache/spoe-cache.conf.example
	sed 's|@PREFIX@|$(PREFIX)|g' examples/spoe-cache-agent.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/spoe-cache-agent.service

clean:
	rm -rf build $(BINS)

-include $(wildcard build/obj/*.d build/asan/*.d)
