# hearth — one build for the daemon, the CLI, the plugins and the tests.
#
#   make            build everything under build/
#   make run        build and start hearthd on a private loopback mosquitto
#   make test       build and run every unit and integration test
#   make asan       the same tests under AddressSanitizer and UBSan (build-asan/)
#   make soak       20-min accelerated soak under ASan/LSan (SOAK_SECONDS=1200); not in make test
#   make valgrind   unit tests, then integration tests with hearthd, under memcheck; not in make test
#   make install    PREFIX, DESTDIR, BINDIR, LIBDIR, PLUGINDIR, SYSCONFDIR, SYSTEMDUNITDIR
#   make deps       install missing Debian packages (apt-get, sudo when not root)
#
# The user's CFLAGS/LDFLAGS are kept; ours are appended. WERROR=0 for packagers.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
PLUGINDIR ?= $(LIBDIR)/hearth/plugins
SYSCONFDIR ?= /etc
SYSTEMDUNITDIR ?= /lib/systemd/system
INCLUDEDIR ?= $(PREFIX)/include
DATADIR ?= $(PREFIX)/share

VERSION := 0.1.0
CC ?= cc
PKG_CONFIG ?= pkg-config
WERROR ?= 1
SANITIZE ?=

ifeq ($(SANITIZE),)
B ?= build
else
B ?= build-asan
endif

LIBS_CORE := libuv libmosquitto sqlite3 libcjson inih libsystemd libwebsockets libcrypt libcrypto
DEPS_PKGS := libuv1-dev libmosquitto-dev mosquitto mosquitto-clients libsqlite3-dev \
	libcjson-dev libcmocka-dev libinih-dev libsystemd-dev libssl-dev pkg-config gcc make \
	libwebsockets-dev libwebsockets-evlib-uv libcrypt-dev dbus-daemon openssl clang libclang-rt-dev valgrind
# for the dashboard's browser tests; make test skips them without it
DEPS_OPTIONAL := chromium

WARN := -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 -Wno-format-nonliteral
ifeq ($(WERROR),1)
WARN += -Werror
endif
OPT := -O2 -g
ifneq ($(SANITIZE),)
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=$(SANITIZE) -fno-sanitize-recover=all
SAN_LD := -fsanitize=$(SANITIZE)
endif

PC_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(LIBS_CORE) 2>/dev/null)
PC_LIBS = $(shell $(PKG_CONFIG) --libs $(LIBS_CORE) 2>/dev/null)
CMOCKA_CFLAGS = $(shell $(PKG_CONFIG) --cflags cmocka 2>/dev/null)
CMOCKA_LIBS = $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)
# tests and simulators may exercise plugin codecs that need libcrypto
TEST_LIBS = $(CMOCKA_LIBS) $(shell $(PKG_CONFIG) --libs libcrypto 2>/dev/null)

ALL_CFLAGS = $(WARN) $(OPT) -D_GNU_SOURCE -DHEARTH_VERSION=\"$(VERSION)\" \
	-DHEARTH_PLUGINDIR=\"$(PLUGINDIR)\" -DHEARTH_SYSCONFDIR=\"$(SYSCONFDIR)\" \
	-DHEARTH_WEBDIR=\"$(DATADIR)/hearth/web\" \
	-Iinclude -Isrc $(PC_CFLAGS) -MMD -MP $(CFLAGS)
ALL_LDFLAGS = $(SAN_LD) $(LDFLAGS)
PLUGIN_CFLAGS = $(WARN) $(OPT) -D_GNU_SOURCE -fPIC -fvisibility=hidden -Iinclude $(CFLAGS)

CORE_SRC := $(filter-out src/main.c,$(wildcard src/*.c))
CORE_OBJ := $(CORE_SRC:%.c=$(B)/obj/%.o)
CTL_SRC := $(wildcard src/ctl/*.c)
CTL_OBJ := $(CTL_SRC:%.c=$(B)/obj/%.o)
PLUGIN_NAMES := $(notdir $(patsubst %/,%,$(wildcard plugins/*/)))
PLUGIN_SOS := $(PLUGIN_NAMES:%=$(B)/plugins/%.so)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/unit/%)
INTEG_SRC := $(wildcard tests/integration/test_*.c)
INTEG_BIN := $(INTEG_SRC:tests/integration/%.c=$(B)/tests/integration/%)
INTEG_LIB_SRC := $(filter-out $(INTEG_SRC),$(wildcard tests/integration/*.c))
INTEG_LIB_OBJ := $(INTEG_LIB_SRC:%.c=$(B)/obj/%.o)
FIXTURE_SRC := $(wildcard tests/fixtures/plugins/*.c)
FIXTURE_SOS := $(FIXTURE_SRC:tests/fixtures/plugins/%.c=$(B)/tests/plugins/%.so)
SIM_SRC := $(wildcard tests/sim/*.c)
SIM_BIN := $(SIM_SRC:tests/sim/%.c=$(B)/tests/sim/%)
# The dashboard: plain files, copied with a gzip beside each for browsers that take it.
WEB_SRC := $(wildcard web/*.html web/*.js web/*.css web/*.svg)
WEB_OUT := $(WEB_SRC:web/%=$(B)/web/%) $(WEB_SRC:web/%=$(B)/web/%.gz)

.PHONY: all run test asan install uninstall clean deps check-deps unit integration format e2e-deps
all: $(B)/hearthd $(B)/hearthctl $(PLUGIN_SOS) $(WEB_OUT)

$(B)/web/%.gz: $(B)/web/%
	gzip -9 -n -c $< > $@

$(B)/web/%: web/%
	@mkdir -p $(dir $@)
	cp $< $@

# Browser tests: playwright-core (exact version, lock file) under $(B)/e2e, driving
# Debian's /usr/bin/chromium.
e2e-deps: $(B)/e2e/node_modules/.installed
$(B)/e2e/node_modules/.installed: tests/e2e/package.json tests/e2e/package-lock.json
	@mkdir -p $(B)/e2e
	cp tests/e2e/package.json tests/e2e/package-lock.json $(B)/e2e/
	cd $(B)/e2e && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(B)/libhearth.a: $(CORE_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(B)/hearthd: $(B)/obj/src/main.o $(B)/libhearth.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PC_LIBS) -ldl -lm

$(B)/hearthctl: $(CTL_OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(shell $(PKG_CONFIG) --libs libmosquitto libcjson 2>/dev/null)

# Plugins: plugins/<name>/*.c -> build/plugins/<name>.so, exporting only the entry.
# A plugin may list extra pkg-config modules in plugins/<name>/pkg-config.txt.
define plugin_rule
$(B)/plugins/$(1).so: $(wildcard plugins/$(1)/*.c) $(wildcard plugins/$(1)/*.h) $(wildcard plugins/*.h) \
		include/hearth/plugin.h
	@mkdir -p $$(dir $$@)
	$$(CC) $$(PLUGIN_CFLAGS) $$(shell $$(PKG_CONFIG) --cflags $$(shell cat plugins/$(1)/pkg-config.txt 2>/dev/null) 2>/dev/null) \
		-shared -o $$@ $(wildcard plugins/$(1)/*.c) $$(ALL_LDFLAGS) \
		$$(shell $$(PKG_CONFIG) --libs $$(shell cat plugins/$(1)/pkg-config.txt 2>/dev/null) 2>/dev/null) -lm
endef
$(foreach p,$(PLUGIN_NAMES),$(eval $(call plugin_rule,$(p))))

$(B)/tests/plugins/%.so: tests/fixtures/plugins/%.c include/hearth/plugin.h
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS) -shared -o $@ $< $(ALL_LDFLAGS) -lpthread

$(B)/tests/unit/%: tests/unit/%.c $(B)/libhearth.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CMOCKA_CFLAGS) -Itests/unit -o $@ $< $(B)/libhearth.a \
		$(ALL_LDFLAGS) $(TEST_LIBS) $(PC_LIBS) -ldl -lm -lpthread

$(B)/tests/integration/%: tests/integration/%.c $(INTEG_LIB_OBJ) $(B)/libhearth.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CMOCKA_CFLAGS) -Itests/integration -o $@ $< $(INTEG_LIB_OBJ) \
		$(B)/libhearth.a $(ALL_LDFLAGS) $(TEST_LIBS) $(PC_LIBS) -ldl -lm -lpthread

$(B)/tests/sim/%: tests/sim/%.c $(B)/libhearth.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libhearth.a $(ALL_LDFLAGS) $(TEST_LIBS) $(PC_LIBS) -ldl -lm -lpthread

TEST_BUILD := all $(UNIT_BIN) $(INTEG_BIN) $(FIXTURE_SOS) $(SIM_BIN)

# The fuzzing smoke pass (each target 20 s, two at a time) joins make test
# when clang with libFuzzer is there (make deps installs it).
HAVE_LIBFUZZER = $(shell echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' | \
	$(FUZZ_CC) -fsanitize=fuzzer -x c - -o /dev/null 2>/dev/null && echo yes)

# Every test binary runs; the runner prints one summary line and fails on any failure.
test: deps
	@$(MAKE) --no-print-directory $(TEST_BUILD)
	@e2e=""; if [ -x /usr/bin/chromium ] && command -v npm >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory e2e-deps && e2e=tests/e2e/run.sh; \
	fi; [ -n "$$e2e" ] || echo "chromium or npm missing: the dashboard's browser tests are skipped"; \
	B=$(B) sh tests/run.sh $(UNIT_BIN) $(INTEG_BIN) $$e2e
	@if [ "$(HAVE_LIBFUZZER)" = yes ]; then \
		$(MAKE) --no-print-directory fuzz-smoke; \
	else echo "fuzzing skipped: no clang with libFuzzer (make deps installs it)"; fi

unit: $(UNIT_BIN) $(FIXTURE_SOS) $(PLUGIN_SOS)
	@B=$(B) sh tests/run.sh $(UNIT_BIN)

integration: $(TEST_BUILD)
	@B=$(B) sh tests/run.sh $(INTEG_BIN)

asan: deps
	@$(MAKE) --no-print-directory SANITIZE=address,undefined test

# The accelerated soak (tests/soak/soak.c, docs/operations.md): a sanitized hearthd
# under load and broker restarts for SOAK_SECONDS; fails on a leak, a death, a failed
# reconnect or request, or RSS/fds that keep growing. Never part of make test.
SOAK_SECONDS ?= 1200
.PHONY: soak soak-run
soak: deps
	@$(MAKE) --no-print-directory SANITIZE=address,undefined soak-run

soak-run: all $(B)/tests/soak/soak
	B=$(B) SOAK_SECONDS=$(SOAK_SECONDS) $(B)/tests/soak/soak

$(B)/tests/soak/soak: tests/soak/soak.c $(INTEG_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/integration -o $@ $< $(INTEG_LIB_OBJ) $(ALL_LDFLAGS) \
		$(PC_LIBS) -lm -lpthread

# Every unit test under memcheck, then every integration test with each
# hearthd it starts under memcheck (HEARTH_VALGRIND=1; its report goes to
# $(B)/valgrind/): any error or definite leak fails the run. Not in make
# test (about 15 min on two cores); tests of timing under load skip
# themselves there.
VALGRIND_CMD := valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
.PHONY: valgrind valgrind-unit valgrind-integration
valgrind: valgrind-unit valgrind-integration

valgrind-unit: deps $(UNIT_BIN) $(FIXTURE_SOS) $(PLUGIN_SOS)
	@HEARTH_SLOW=1 VALGRIND="$(VALGRIND_CMD)" B=$(B) sh tests/run.sh $(UNIT_BIN)

valgrind-integration: deps $(TEST_BUILD)
	@rm -rf $(B)/valgrind && mkdir -p $(B)/valgrind
	@HEARTH_VALGRIND=1 VALGRIND_OPTS="--log-file=$(abspath $(B))/valgrind/hearthd.%p.log" \
		B=$(B) sh tests/run.sh $(INTEG_BIN)
	@sh tests/valgrind-reports.sh $(B)/valgrind

run: deps all
	@bash scripts/run-dev.sh $(B)

# Missing Debian packages are installed; nothing happens when all are there.
deps:
	@missing=""; for p in $(DEPS_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi; \
	for p in $(DEPS_OPTIONAL); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" && continue; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		[ -n "$$missing" ] || $$SUDO apt-get update -q; missing=updated; \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$p || echo "$$p is not installable"; \
	done

MANDIR ?= $(DATADIR)/man
DOCDIR ?= $(DATADIR)/doc/hearth
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
SYSTEMD_UNITS := hearth.service hearth-backup.service hearth-backup.timer

# An existing hearth.conf is never overwritten. The unit gets this build's
# paths; /etc/hearth/rules is created empty.
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(SYSCONFDIR)/hearth \
		$(DESTDIR)$(SYSCONFDIR)/hearth/rules $(DESTDIR)$(INCLUDEDIR)/hearth \
		$(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(DOCDIR)/dropins $(DESTDIR)$(DOCDIR)/examples/plugin-out-of-tree
	install -m 755 $(B)/hearthd $(B)/hearthctl $(DESTDIR)$(BINDIR)/
	install -m 644 $(PLUGIN_SOS) $(DESTDIR)$(PLUGINDIR)/
	install -m 644 include/hearth/plugin.h $(DESTDIR)$(INCLUDEDIR)/hearth/
	install -d $(DESTDIR)$(DATADIR)/hearth/web
	install -m 644 $(WEB_OUT) $(DESTDIR)$(DATADIR)/hearth/web/
	test -e $(DESTDIR)$(SYSCONFDIR)/hearth/hearth.conf || \
		install -m 640 config/hearth.conf $(DESTDIR)$(SYSCONFDIR)/hearth/hearth.conf
	if [ -z "$(DESTDIR)" ] && getent group hearth >/dev/null 2>&1; then \
		chgrp hearth $(SYSCONFDIR)/hearth/hearth.conf; fi
	printf 'prefix=%s\nincludedir=%s\nplugindir=%s\n\nName: hearth-plugin\nDescription: hearth plugin ABI\nVersion: %s\nCflags: -I$${includedir}\n' \
		"$(PREFIX)" "$(INCLUDEDIR)" "$(PLUGINDIR)" "$(VERSION)" > $(DESTDIR)$(LIBDIR)/pkgconfig/hearth-plugin.pc
	for u in $(SYSTEMD_UNITS); do \
		sed -e 's|/usr/local/bin/|$(BINDIR)/|' -e 's|/etc/hearth/|$(SYSCONFDIR)/hearth/|g' \
			systemd/$$u > $(DESTDIR)$(SYSTEMDUNITDIR)/$$u && \
		chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$u || exit 1; \
	done
	install -m 644 systemd/hearth.sysusers $(DESTDIR)$(SYSUSERSDIR)/hearth.conf
	install -m 644 man/hearthctl.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 man/hearth.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 644 man/hearthd.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	install -m 644 systemd/dropins/*.conf $(DESTDIR)$(DOCDIR)/dropins/
	install -m 644 examples/plugin-out-of-tree/* $(DESTDIR)$(DOCDIR)/examples/plugin-out-of-tree/

# Configuration, rules and the database are the user's: they stay.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/hearthd $(DESTDIR)$(BINDIR)/hearthctl
	rm -f $(PLUGIN_NAMES:%=$(DESTDIR)$(PLUGINDIR)/%.so)
	rm -f $(DESTDIR)$(INCLUDEDIR)/hearth/plugin.h $(DESTDIR)$(LIBDIR)/pkgconfig/hearth-plugin.pc
	rm -rf $(DESTDIR)$(DATADIR)/hearth/web
	rm -f $(SYSTEMD_UNITS:%=$(DESTDIR)$(SYSTEMDUNITDIR)/%) $(DESTDIR)$(SYSUSERSDIR)/hearth.conf
	rm -f $(DESTDIR)$(MANDIR)/man1/hearthctl.1 $(DESTDIR)$(MANDIR)/man5/hearth.conf.5 \
		$(DESTDIR)$(MANDIR)/man8/hearthd.8
	rm -rf $(DESTDIR)$(DOCDIR)
	-rmdir $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(LIBDIR)/hearth $(DESTDIR)$(INCLUDEDIR)/hearth 2>/dev/null

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan

# -- fuzzing (clang with libFuzzer) -------------------------------------------
# Each tests/fuzz/fuzz_NAME.c names what it links in a "fuzz-sources:" line:
# "core" for the daemon's library, or plugin .c files. Seeds live in
# tests/fuzz/corpus/NAME/ and stay untouched: new inputs go to build-fuzz/.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 600
FUZZ_JOBS ?= 1
FUZZ_SAN := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS := -g -O1 -D_GNU_SOURCE -DHEARTH_VERSION=\"$(VERSION)\" \
	-DHEARTH_PLUGINDIR=\"$(PLUGINDIR)\" -DHEARTH_SYSCONFDIR=\"$(SYSCONFDIR)\" -Iinclude -Isrc $(PC_CFLAGS)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)
FUZZ_CORE_OBJ := $(CORE_SRC:%.c=build-fuzz/obj/%.o)

build-fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -c $< -o $@

build-fuzz/libhearth.a: $(FUZZ_CORE_OBJ)
	rm -f $@ && $(AR) rcs $@ $^

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c build-fuzz/libhearth.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -o $@ $< \
		$(filter-out core,$(shell sed -n 's/^ \* fuzz-sources: //p' $<)) build-fuzz/libhearth.a \
		$(PC_LIBS) $(shell $(PKG_CONFIG) --libs libcrypto 2>/dev/null) -ldl -lm -lpthread

.PHONY: fuzz fuzz-smoke
fuzz: $(FUZZ_BIN)
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_JOBS) $(FUZZ_BIN)

fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=20 FUZZ_JOBS=2

# -- running it for real: unit check, install check, package, Raspberry Pi -----
#   make check-unit     systemd-analyze security of systemd/hearth.service (<= 2.0)
#   make test-install   make install into a temp root; build the out-of-tree plugin example
#   make deb            build/deb/hearth_VERSION-1_ARCH.deb (DEB_ARCH=arm64 cross-builds)
#   make test-deb       check the package's fields and files, install it into a temp root
#   make cross-arm64    cross-build for 64-bit Raspberry Pi OS into $(B)-arm64 (installs
#                       the cross compiler and arm64 libraries first: multiarch)
#   make test-arm64     the unit tests of that build under qemu-aarch64
#   make cross-armhf, make test-armhf: the same for 32-bit Raspberry Pi OS
DEB_ARCH ?= $(shell dpkg --print-architecture 2>/dev/null)
.PHONY: check-unit test-install deb test-deb cross-arm64 test-arm64 cross-armhf test-armhf

check-unit:
	@sh scripts/check-unit.sh

test-install:
	@sh scripts/test-install.sh $(B)

deb:
	@sh scripts/build-deb.sh $(B)/deb $(DEB_ARCH)

test-deb: deb
	@sh scripts/test-deb.sh $(B)/deb/hearth_$(VERSION)-1_$(DEB_ARCH).deb

cross-arm64:
	@sh scripts/cross.sh build arm64 $(B)-arm64

test-arm64:
	@sh scripts/cross.sh test arm64 $(B)-arm64

cross-armhf:
	@sh scripts/cross.sh build armhf $(B)-armhf

test-armhf:
	@sh scripts/cross.sh test armhf $(B)-armhf

-include $(shell find $(B)/obj $(B)/tests $(B)/plugins -name '*.d' 2>/dev/null)

# -- benchmark (tests/bench, docs/performance.md); never part of make test ----------
# make bench: every scenario, 3 runs each (under 15 min); make bench-quick: one
# short run of each (under 2 min). Results: $(B)/bench/results.jsonl and .md.
BENCH_SRC := tests/bench/hearth-bench.c $(wildcard tests/bench/bench_*.c)
BENCH_BIN := $(B)/tests/bench/hearth-bench $(B)/tests/bench/bench-fill $(B)/tests/bench/iocount.so

$(B)/tests/bench/hearth-bench: $(BENCH_SRC) tests/bench/bench.h tests/bench/iocount.h
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(OPT) -D_GNU_SOURCE $(CFLAGS) -o $@ $(BENCH_SRC) $(ALL_LDFLAGS) \
		$(shell $(PKG_CONFIG) --cflags --libs libmosquitto 2>/dev/null)

$(B)/tests/bench/bench-fill: tests/bench/bench-fill.c $(B)/libhearth.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libhearth.a $(ALL_LDFLAGS) $(PC_LIBS) -ldl -lm -lpthread

$(B)/tests/bench/iocount.so: tests/bench/iocount.c tests/bench/iocount.h
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(OPT) -D_GNU_SOURCE -fPIC -shared $(CFLAGS) -o $@ $< $(ALL_LDFLAGS) -ldl

.PHONY: bench bench-quick bench-deps
bench-deps:
	@sh tests/bench/deps.sh

bench bench-quick: deps bench-deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	python3 tests/bench/run.py --build $(B) $(if $(filter bench-quick,$@),--quick) \
		--out $(B)/bench/results.jsonl
	python3 tests/bench/table.py $(B)/bench/results.jsonl > $(B)/bench/results.md
	@cat $(B)/bench/results.md
