# spoe-cache: one plain Makefile.
#   make            build spoe-cache-agent and spoe-cache-ctl
#   make test       every test tier (unit+ASan/UBSan, wire, end-to-end, fuzz smoke)
#   make run        the whole stack on 127.0.0.1 (3 memcached, agent, HAProxy, origin)
#   make bench      benchmarks (never part of make test)
#   make fuzz       libFuzzer targets (clang)
#   make install    PREFIX=/usr/local DESTDIR=
#   make deb        a Debian package in build/deb/ (dpkg-buildpackage, lintian)
#   make deps       apt-get install everything the above need
#   make promtool   promtool for the metrics test (Debian's prometheus package, unpacked, not installed)

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
# The layers (see README, "Where things are"): each may include only the
# ones before it, and gets only the include paths and libraries it needs.
#   agent/core  pure codecs and the policy core: libspoecache-core.a
#   agent/ops   configuration (libconfig), logging, counters
#   agent/io    event-loop shells (libevent): SPOP, pool, workers, admin
#   agent/cmd   the two programs
CORE_PKGS := openssl libmemcached
OPS_PKGS  := libconfig
IO_PKGS   := libevent libevent_openssl libevent_pthreads
pkgcflags = $(shell pkg-config --cflags $(1) 2>/dev/null)
pkglibs   = $(shell pkg-config --libs $(1) 2>/dev/null)
CORE_LIBS := $(call pkglibs,$(CORE_PKGS))
OPS_LIBS  := $(call pkglibs,$(OPS_PKGS))
IO_LIBS   := $(call pkglibs,$(IO_PKGS))

CFLAGS  ?= -O2 -g
# `make test` builds with WERROR=-Werror: a warning fails the tests.
WERROR  ?=
WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes $(WERROR)
override CFLAGS += -std=c11 -D_GNU_SOURCE -pthread $(WARN) -MMD -MP
LDLIBS  += -pthread -lm

CORE_INC := -Iagent/core $(call pkgcflags,$(CORE_PKGS))
OPS_INC  := $(CORE_INC) -Iagent/ops $(call pkgcflags,$(OPS_PKGS))
IO_INC   := $(OPS_INC) -Iagent/io $(call pkgcflags,$(IO_PKGS))

SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

CORE_SRC := $(wildcard agent/core/*.c)
OPS_SRC  := $(wildcard agent/ops/*.c)
IO_SRC   := $(wildcard agent/io/*.c)
# What spoe-cache-ctl needs of the I/O layer: the pool, no SPOP, no workers.
CTL_IO   := agent/io/pool.c agent/io/bevio.c agent/io/inspect.c
obj = $(patsubst agent/%.c,build/$(1)/%.o,$(2))

CORE_LIB      := build/obj/libspoecache-core.a
ASAN_CORE_LIB := build/asan/libspoecache-core.a
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=build/asan/tests/%)
TOOL_SRC  := $(wildcard tests/tools/*.c)
TOOL_BIN  := $(TOOL_SRC:tests/tools/%.c=build/tools/%)
FUZZ_SRC  := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN  := $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)

BINS := spoe-cache-agent spoe-cache-ctl
DEPS_STAMP := build/.deps-ok
NPROC := $(shell nproc 2>/dev/null || echo 2)

.PHONY: all test run bench fuzz fuzz-run install deps check-deps clean asan unit tools haproxy34 promtool deb
all: $(BINS)

AGENT_OBJ = $(call obj,$(1),agent/cmd/spoe-cache-agent.c $(IO_SRC) $(OPS_SRC))
CTL_OBJ   = $(call obj,$(1),agent/cmd/spoe-cache-ctl.c $(CTL_IO) $(OPS_SRC))
ALL_LIBS := $(IO_LIBS) $(OPS_LIBS) $(CORE_LIBS)

spoe-cache-agent: $(call AGENT_OBJ,obj) $(CORE_LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(ALL_LIBS) $(LDLIBS)
spoe-cache-ctl: $(call CTL_OBJ,obj) $(CORE_LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(ALL_LIBS) $(LDLIBS)

# One compile rule per layer and build flavour (obj: release, asan:
# AddressSanitizer + UndefinedBehaviorSanitizer).
build/obj/core/%.o: agent/core/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(CORE_INC) -c -o $@ $<
build/obj/ops/%.o: agent/ops/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(OPS_INC) -c -o $@ $<
build/obj/io/%.o: agent/io/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(IO_INC) -c -o $@ $<
build/obj/cmd/%.o: agent/cmd/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(IO_INC) -c -o $@ $<
build/asan/core/%.o: agent/core/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -O1 $(SAN) $(CORE_INC) -c -o $@ $<
build/asan/ops/%.o: agent/ops/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -O1 $(SAN) $(OPS_INC) -c -o $@ $<
build/asan/io/%.o: agent/io/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -O1 $(SAN) $(IO_INC) -c -o $@ $<
build/asan/cmd/%.o: agent/cmd/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -O1 $(SAN) $(IO_INC) -c -o $@ $<

$(CORE_LIB): $(call obj,obj,$(CORE_SRC))
	rm -f $@ && ar rcs $@ $^
$(ASAN_CORE_LIB): $(call obj,asan,$(CORE_SRC))
	rm -f $@ && ar rcs $@ $^

build/asan/spoe-cache-agent: $(call AGENT_OBJ,asan) $(ASAN_CORE_LIB)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(ALL_LIBS) $(LDLIBS)
build/asan/spoe-cache-ctl: $(call CTL_OBJ,asan) $(ASAN_CORE_LIB)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(ALL_LIBS) $(LDLIBS)
# Unit tests link the core library alone: a codec that reached for
# libevent or libconfig would not link. -MMD cannot describe a
# compile-and-link of several inputs: depend on the headers explicitly.
build/asan/tests/%: tests/unit/%.c $(ASAN_CORE_LIB) $(wildcard tests/unit/*.h agent/core/*.h)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -O1 $(SAN) $(CORE_INC) -Itests/unit -o $@ $(filter %.c %.a,$^) $(CORE_LIBS) $(LDLIBS)
# procstat.c is pure but lives in agent/ops (it is no cache codec): its
# test links it alone.
build/asan/tests/test_procstat: tests/unit/test_procstat.c agent/ops/procstat.c $(wildcard tests/unit/*.h) agent/ops/procstat.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -O1 $(SAN) -Iagent/ops -Itests/unit -o $@ $(filter %.c,$^) $(LDLIBS)
build/tools/%: tests/tools/%.c $(call obj,obj,$(CTL_IO) $(OPS_SRC)) $(CORE_LIB) $(wildcard agent/*/*.h)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(IO_INC) -o $@ $(filter %.c %.o %.a,$^) $(ALL_LIBS) $(LDLIBS)

# The pool driver of the wire tests runs the pool under the sanitizers too.
build/asan/tools/%: tests/tools/%.c $(call obj,asan,$(CTL_IO) $(OPS_SRC)) $(ASAN_CORE_LIB) $(wildcard agent/*/*.h)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -O1 $(SAN) $(IO_INC) -o $@ $(filter %.c %.o %.a,$^) $(ALL_LIBS) $(LDLIBS)

asan: build/asan/spoe-cache-agent build/asan/spoe-cache-ctl $(UNIT_BIN) build/asan/tools/pool_driver
unit: $(UNIT_BIN)
tools: $(TOOL_BIN)

# libFuzzer targets: clang only, each links the core built with clang.
FUZZ_CC    ?= clang
FUZZ_FLAGS := -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined
# Each target links the core alone (fuzz_config the ops layer too).
build/fuzz/fuzz_config: fuzz/fuzz_config.c $(CORE_SRC) $(OPS_SRC)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(OPS_INC) -o $@ $^ $(OPS_LIBS) $(CORE_LIBS) $(LDLIBS)
build/fuzz/%: fuzz/%.c $(CORE_SRC)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(CORE_INC) -o $@ $^ $(CORE_LIBS) $(LDLIBS)
fuzz: $(FUZZ_BIN)
FUZZ_SECONDS ?= 60
fuzz-run: fuzz
	@for f in $(FUZZ_BIN); do n=$$(basename $$f); mkdir -p build/fuzz/corpus-$$n; \
	  cp -n fuzz/corpus/$$n/* build/fuzz/corpus-$$n/ 2>/dev/null; \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/fuzz/lsan.supp \
	  $$f -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/$$n- build/fuzz/corpus-$$n || exit 1; done

# HAProxy 3.4, built once from ../shared/haproxy (test tooling, never part
# of the product) so the end-to-end tier runs against 3.x as well as
# Debian's 2.6. Absent tarball: the tier says so and runs on 2.6 alone.
H34_DIR := $(abspath ..)/shared/haproxy
H34_TGZ := $(H34_DIR)/haproxy-3.4.0.tar.gz
H34_BIN := build/haproxy-3.4/haproxy
H34_MAKE := TARGET=linux-glibc USE_OPENSSL=1 USE_LUA=1 USE_PCRE2=1 USE_PROMEX=1
$(H34_BIN): $(H34_TGZ)
	cd $(H34_DIR) && sha256sum -c --quiet haproxy-3.4.0.tar.gz.sha256
	rm -rf build/haproxy-3.4 && mkdir -p build/haproxy-3.4
	tar -xzf $(H34_TGZ) -C build/haproxy-3.4
	$(MAKE) --no-print-directory -s -C build/haproxy-3.4/haproxy-3.4.0 -j2 $(H34_MAKE) >build/haproxy-3.4/build.log 2>&1 \
	  || { tail -20 build/haproxy-3.4/build.log; exit 1; }
	cp build/haproxy-3.4/haproxy-3.4.0/haproxy $@.tmp && mv $@.tmp $@
haproxy34: $(if $(wildcard $(H34_TGZ)),$(H34_BIN))
	@$(if $(wildcard $(H34_TGZ)),true,echo "HAProxy 3.4: $(H34_TGZ) absent, the 3.x tier will be skipped")

# promtool (test tooling too): Debian's prometheus package, downloaded
# with apt-get and unpacked under build/promtool, never installed (that
# would start a Prometheus server); see scripts/promtool.sh. Fetched once.
# Where it cannot be (no network), make goes on, tests/wire/
# test_metrics_prom.py says skip for its promtool check, and the next make
# tries again.
PROMTOOL := build/promtool/usr/bin/promtool
$(PROMTOOL):
	@scripts/promtool.sh build/promtool || true
promtool: $(PROMTOOL)

$(DEPS_STAMP):
	@$(MAKE) --no-print-directory check-deps || $(MAKE) --no-print-directory deps
	@mkdir -p build && touch $@

check-deps:
	@scripts/deps.sh check

deps:
	@scripts/deps.sh install

test: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory -j$(NPROC) WERROR=-Werror all asan tools haproxy34 promtool $(if $(shell command -v $(FUZZ_CC)),fuzz)
	@python3 tests/run.py

run: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory all
	@python3 scripts/run_stack.py

bench: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory all
	@python3 tests/bench/bench.py
	@python3 tests/bench/pool_bench.py

UNITDIR ?= $(PREFIX)/lib/systemd/system
SHARE   := $(PREFIX)/share/spoe-cache
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(SHARE)/haproxy-conf \
	  $(DESTDIR)$(SHARE)/lua-glue $(DESTDIR)/etc/spoe-cache \
	  $(DESTDIR)$(UNITDIR) $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 man/spoe-cache-agent.8 man/spoe-cache-ctl.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	for f in haproxy-conf/*; do \
	  sed 's|/usr/local/share/spoe-cache|$(SHARE)|g' $$f > $(DESTDIR)$(SHARE)/$$f && chmod 0644 $(DESTDIR)$(SHARE)/$$f || exit 1; done
	install -m 0644 lua-glue/*.lua $(DESTDIR)$(SHARE)/lua-glue/
	install -m 0644 examples/spoe-cache.conf $(DESTDIR)/etc/spoe-cache/spoe-cache.conf.example
	sed 's|@PREFIX@|$(PREFIX)|g' examples/spoe-cache-agent.service > $(DESTDIR)$(UNITDIR)/spoe-cache-agent.service

# A Debian package (debhelper, debian/ in the tree), built from a copy of the
# tree under build/deb/ so nothing is written outside the checkout.
DEB_VERSION := $(shell sed -n '1s/.*(\(.*\)).*/\1/p' debian/changelog)
DEB_SRC     := build/deb/spoe-cache-$(DEB_VERSION)
deb:
	rm -rf build/deb && mkdir -p $(DEB_SRC)
	tar --exclude=./build --exclude=./.git $(addprefix --exclude=./,$(BINS)) -cf - . | tar -xf - -C $(DEB_SRC)
	cd $(DEB_SRC) && dpkg-buildpackage -us -uc -b >../build.log 2>&1 || { tail -30 ../build.log; exit 1; }
	lintian --fail-on error build/deb/*.changes
	@ls build/deb/*.deb

clean:
	rm -rf build $(BINS)

-include $(wildcard build/obj/*/*.d build/asan/*/*.d)
