# debate: `make` builds build/debate; `make test` installs what is missing,
# checks the layering of src/, builds with warnings as errors, runs every
# test (also under ASan+UBSan); `make run` starts the server with the
# defaults. See README.md.

# Plain `make` builds the binary, whatever rule comes first below.
.DEFAULT_GOAL := all

CC      ?= cc
PYTHON  := /usr/bin/python3
DATA_DIR ?= $(CURDIR)/data

WARN    := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes -Wvla -Wpointer-arith \
           -Wcast-align -Wwrite-strings -Wno-unused-parameter -Wno-missing-field-initializers
CPPFLAGS := -Isrc -I/usr/include/postgresql -DH2O_USE_LIBUV=0 -D_GNU_SOURCE
CFLAGS  := -std=gnu17 -g $(WARN)
LIBS    := -lh2o-evloop -lssl -lcrypto -lz -llzma -lpthread -ljansson -lpq -lseccomp -lcurl

RELEASE_FLAGS := -O2 -D_FORTIFY_SOURCE=2 -fstack-protector-strong
ASAN_FLAGS    := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
# The fuzz targets (fuzz/*.c): the library once more, with clang and
# libFuzzer's coverage; only the targets' link adds libFuzzer's main.
# clang's -Wcast-align warns on x86, where gcc's is silent: off, as for gcc.
FUZZ_CC       := clang
FUZZ_FLAGS    := -O1 -Wno-cast-align -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
FUZZ_SECONDS  ?= 60

# The web page (web/) and the OpenAPI document, compiled in: see scripts/embed-assets.py.
GEN_ASSETS := build/gen/web_assets.c
WEB_FILES  := $(wildcard web/*)

SRCS      := $(wildcard src/*.c src/cmd/*.c src/client/*.c src/http/*.c src/db/*.c src/engine/*.c src/service/*.c)
LIB_SRCS  := $(filter-out src/main.c,$(SRCS)) $(GEN_ASSETS)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
FUZZ_SRCS := $(wildcard fuzz/*.c)
HDRS      := $(wildcard src/*.h src/cmd/*.h src/client/*.h src/http/*.h src/db/*.h src/engine/*.h src/service/*.h tests/unit/*.h)

# $(1): variant directory, $(2): extra flags
define variant
$(1)/obj/%.o: %.c $(HDRS)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CPPFLAGS) $$(CFLAGS) $(2) -c $$< -o $$@

$(1)/libdebate.a: $$(patsubst %.c,$(1)/obj/%.o,$$(LIB_SRCS))
	@rm -f $$@
	ar rcs $$@ $$^

$(1)/debate: $(1)/obj/src/main.o $(1)/libdebate.a
	$$(CC) $(2) $$(LDFLAGS) -o $$@ $$^ $$(LIBS)

$(1)/tools/%: $(1)/obj/tests/tools/%.o $(1)/libdebate.a
	@mkdir -p $$(dir $$@)
	$$(CC) $(2) -o $$@ $$^ $$(LIBS)

$(1)/targets/%: $(1)/obj/fuzz/%.o $(1)/libdebate.a
	@mkdir -p $$(dir $$@)
	$$(CC) $(2) -fsanitize=fuzzer -o $$@ $$^ $$(LIBS)

$(1)/tests/%: $(1)/obj/tests/unit/%.o $(1)/obj/tests/unit/harness.o $(1)/obj/tests/unit/dbtest.o $(1)/libdebate.a
	@mkdir -p $$(dir $$@)
	$$(CC) $(2) -o $$@ $$^ $$(LIBS)
endef

# web/ itself is a prerequisite so that a file added or removed there rebuilds the table.
$(GEN_ASSETS): scripts/embed-assets.py $(WEB_FILES) web docs/openapi.json
	$(PYTHON) scripts/embed-assets.py $@ web docs/openapi.json

$(eval $(call variant,build,$(RELEASE_FLAGS)))
$(eval $(call variant,build/asan,$(ASAN_FLAGS)))
$(eval $(call variant,build/fuzz,$(FUZZ_FLAGS)))
build/fuzz/%: CC := $(FUZZ_CC)
$(patsubst fuzz/%.c,build/fuzz/obj/fuzz/%.o,$(FUZZ_SRCS)): fuzz/fuzz.h

UNIT_NAMES := $(patsubst tests/unit/%.c,%,$(UNIT_SRCS))

# Unit tests that include the source file they test (to reach its static
# functions) are rebuilt when that file changes.
$(foreach v,build build/asan,$(v)/obj/tests/unit/test_isodiff.o): src/engine/isodiff.c
$(foreach v,build build/asan,$(v)/obj/tests/unit/test_layers.o): src/engine/layers.c
$(foreach v,build build/asan,$(v)/obj/tests/unit/test_sandbox_cgroup.o): src/engine/sandbox_cgroup.c
FUZZ_NAMES := $(patsubst fuzz/%.c,%,$(FUZZ_SRCS))

# make install [PREFIX=/usr/local] [DESTDIR=]: the binary, the systemd
# units (pointing at this BINDIR), the man page, bash completion, docs and
# examples. /etc/debate/debate.conf only when there is none. The system user
# debate: deploy/sysusers.d/debate.conf (systemd-sysusers) or adduser.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/debate
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
SYSCONFDIR ?= /etc
# The binary to install: the release build unless told (the tests install the one under test).
INSTALL_BIN ?= build/debate
UNITS      := $(wildcard deploy/systemd/*.service deploy/systemd/*.timer)
EXAMPLES   := $(wildcard examples/*.json) deploy/Caddyfile deploy/debate.conf deploy/cron/debate-backup
DOCS       := $(wildcard docs/*.md) docs/openapi.json README.md

.PHONY: install
install: $(INSTALL_BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(COMPLETIONDIR) $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(SYSCONFDIR)/debate
	install -m 0755 $(INSTALL_BIN) $(DESTDIR)$(BINDIR)/debate
	install -m 0644 docs/debate.1 $(DESTDIR)$(MANDIR)/man1/debate.1
	for u in $(UNITS); do \
		sed 's|/usr/bin/debate|$(BINDIR)/debate|g' $$u > $(DESTDIR)$(UNITDIR)/$$(basename $$u) && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$(basename $$u) || exit 1; \
	done
	install -m 0644 deploy/sysusers.d/debate.conf $(DESTDIR)$(SYSUSERSDIR)/debate.conf
	install -m 0644 deploy/bash-completion/debate $(DESTDIR)$(COMPLETIONDIR)/debate
	install -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	install -m 0644 $(EXAMPLES) $(DESTDIR)$(DOCDIR)/examples/
	test -e $(DESTDIR)$(SYSCONFDIR)/debate/debate.conf || \
		install -m 0644 deploy/debate.conf $(DESTDIR)$(SYSCONFDIR)/debate/debate.conf

.PHONY: all deps test test-cgroup2 test-examples run unit fuzz-build fuzz clean
.SECONDARY:

all: build/debate

deps:
	@scripts/install-deps.sh

unit: $(addprefix build/tests/,$(UNIT_NAMES)) $(addprefix build/asan/tests/,$(UNIT_NAMES))

# The fuzz targets; `make test` replays their corpora (tests/run.py fuzz).
fuzz-build: $(addprefix build/fuzz/targets/,$(FUZZ_NAMES))

# Each target until it has used FUZZ_SECONDS of CPU time, one at a time, at
# the lowest priority (scripts/fuzz-campaign.py). New inputs go to
# build/fuzz/corpus/TARGET (fuzz/corpus/TARGET is read, never written),
# crashes to build/fuzz/crashes/, one line per target to
# build/fuzz/campaign.tsv: see docs/internals/testing.md.
fuzz: fuzz-build
	@$(PYTHON) scripts/fuzz-campaign.py --cpu-seconds $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Which directory of src/ may include which: see scripts/check-layers.py.
.PHONY: check-layers
check-layers:
	@$(PYTHON) scripts/check-layers.py src

test: deps
	@scripts/install-deps.sh --test
	@$(MAKE) --no-print-directory check-layers
	@$(MAKE) --no-print-directory -j$$(nproc) build/debate build/asan/debate unit build/tools/queue_worker fuzz-build
	@$(PYTHON) tests/run.py

# The sandbox on a pure cgroup v2 machine: a bookworm live image booted
# under QEMU runs test_sandbox and the escape corpus (tests/integration/
# test_cgroup2.py). Root; about ten minutes; not part of `make test`.
# DEBATE_TEST_CACHE_DIR keeps the package cache between runs.
test-cgroup2: build/debate build/tests/test_sandbox
	@DEBATE_TEST_CGROUP2=1 DEBATE_BIN=$(CURDIR)/build/debate \
		$(PYTHON) -m pytest -q -s -rfEs -p no:cacheprovider tests/integration/test_cgroup2.py

# Every example that `make test` does not build (rescue: minutes), built
# for real and checked against its recipe.
test-examples: build/debate
	@DEBATE_TEST_EXAMPLES=1 DEBATE_BIN=$(CURDIR)/build/debate \
		$(PYTHON) -m pytest -q -rfEs -p no:cacheprovider tests/integration/test_build.py -k every_other_example

# As root, the embedded PostgreSQL runs as user postgres and the front door
# as user debate (or nobody when there is no such user), which must both be
# able to reach the data directory; a checkout under a private home (/root)
# falls back to /var/lib/debate.
run: deps
	@$(MAKE) --no-print-directory build/debate
	@dir=$${DEBATE_DATA_DIR:-$(DATA_DIR)}; \
	front=$${DEBATE_USER:-$$(id -u debate >/dev/null 2>&1 && echo debate || echo nobody)}; \
	if [ "$$(id -u)" = 0 ] && \
	   { { [ -z "$$DEBATE_DATABASE_URL" ] && ! runuser -u postgres -- test -x "$$(dirname "$$dir")" 2>/dev/null; } || \
	     ! runuser -u "$$front" -- test -x "$$(dirname "$$dir")" 2>/dev/null; }; then \
		echo "make run: user postgres or $$front cannot reach $$dir; using /var/lib/debate instead"; \
		dir=/var/lib/debate; \
	fi; \
	DEBATE_DATA_DIR=$$dir exec build/debate serve

clean:
	rm -rf build
