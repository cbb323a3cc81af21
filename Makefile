# meridian: `make` builds ./meridian and ./meridianctl; `make test` sets up,
# builds and runs every test twice (release, then ASan+UBSan); `make run`
# runs the edge on its demo clusters; `make bench` measures it.

DEB_PACKAGES := build-essential pkg-config libevent-dev libssl-dev \
	libmaxminddb-dev libjansson-dev libcmocka-dev libhttp-parser-dev \
	python3 curl wrk procps bc libmaxmind-db-writer-perl \
	chromium chromium-driver python3-selenium clang-14 libfuzzer-14-dev \
	clang-format-14
PKGS := libevent libevent_pthreads libevent_openssl openssl libmaxminddb jansson

CC ?= cc
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser -lpthread -lm
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
	-Wno-unused-parameter
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -I. $(WARN) -g -DMR_VERSION='"$(VERSION)"'

# Two builds share the sources: release (-O2) and sanitized (ASan + UBSan).
VARIANT ?= release
ifeq ($(VARIANT),asan)
OPT := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
else
OPT := -O2
endif
B := build/$(VARIANT)

# One library per plane: libcore (common, conf, geo, health), librouter (the
# data path), libcontrol (the control plane, but its main()); ctl/ is
# meridianctl, a separate program that links none of them.
CORE_SRCS := $(wildcard common/*.c conf/*.c geo/*.c health/*.c)
ROUTER_SRCS := $(wildcard router/*.c)
CONTROL_SRCS := $(filter-out control/main.c,$(wildcard control/*.c))
CTL_SRCS := $(wildcard ctl/*.c)
# meridianctl needs of libcore only the token reader, its file reader and its
# error list, and of the libraries only jansson and libcrypto (OPENSSL_cleanse).
CTL_CORE_OBJS := common/err.o common/file.o conf/secrets.o
CTL_LIBS = $(shell pkg-config --libs jansson libcrypto 2>/dev/null)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
# A unit test named after a module links that module's plane and those below.
ROUTER_TESTS := $(filter $(ROUTER_SRCS:router/%.c=$(B)/tests/test_%),$(UNIT_BINS))
CONTROL_TESTS := $(filter $(CONTROL_SRCS:control/%.c=$(B)/tests/test_%),$(UNIT_BINS))
CTL_TESTS := $(filter $(B)/tests/test_ctl_%,$(UNIT_BINS))
CORE_TESTS := $(filter-out $(ROUTER_TESTS) $(CONTROL_TESTS) $(CTL_TESTS),$(UNIT_BINS))

# Test GeoIP databases (written by tools/mkmmdb.pl): rules in geo/testdata.mk.
include geo/testdata.mk

.PHONY: all build deps check-deps test test-variant run bench clean fuzz fuzz-build \
	format format-check need-clang-format

# Quiet by default (one line per step); V=1 shows whole commands.
ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-6s %s\n' '$(1)' '$(2)'
endif
all: check-deps geo/data/country.mmdb
	@$(MAKE) --no-print-directory build VARIANT=release
	@ln -sf build/release/meridian meridian
	@ln -sf build/release/meridianctl meridianctl

build: $(B)/meridian $(B)/meridianctl $(B)/origin $(B)/tlsbench $(UNIT_BINS) \
	$(B)/tests/faildirsync.so

# -MMD -MP: each object depends on the headers it includes (build/*/**.d).
$(B)/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	$(call say,CC,$@)
	$(Q)$(CC) $(BASE_CFLAGS) $(OPT) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(B)/libcore.a: $(CORE_SRCS:%.c=$(B)/%.o)
	@rm -f $@
	$(call say,AR,$@)
	$(Q)ar rcs $@ $^

# The dashboard page is compiled in: index.html with dashboard.css and
# dashboard.js inlined (tools/embed.py).
DASHBOARD_FILES := control/dashboard/index.html control/dashboard/dashboard.css \
	control/dashboard/dashboard.js
$(B)/gen/dashboard_html.c: $(DASHBOARD_FILES) tools/embed.py
	@mkdir -p $(dir $@)
	$(call say,GEN,$@)
	$(Q)python3 tools/embed.py $< $@ mr_dashboard_html

$(B)/gen/dashboard_html.o: $(B)/gen/dashboard_html.c
	$(call say,CC,$@)
	$(Q)$(CC) $(BASE_CFLAGS) $(OPT) -c $< -o $@

$(B)/librouter.a: $(ROUTER_SRCS:%.c=$(B)/%.o)
	@rm -f $@
	$(call say,AR,$@)
	$(Q)ar rcs $@ $^

$(B)/libcontrol.a: $(CONTROL_SRCS:%.c=$(B)/%.o) $(B)/gen/dashboard_html.o
	@rm -f $@
	$(call say,AR,$@)
	$(Q)ar rcs $@ $^

$(B)/meridian: $(B)/control/main.o $(B)/libcontrol.a $(B)/librouter.a $(B)/libcore.a
	$(call say,LD,$@)
	$(Q)$(CC) $(OPT) -o $@ $^ $(PKG_LIBS)

$(B)/meridianctl: $(CTL_SRCS:%.c=$(B)/%.o) $(CTL_CORE_OBJS:%=$(B)/%)
	$(call say,LD,$@)
	$(Q)$(CC) $(OPT) -o $@ $^ $(CTL_LIBS)

$(B)/origin: $(B)/tools/origin.o
	$(call say,LD,$@)
	$(Q)$(CC) $(OPT) -o $@ $^ $(PKG_LIBS)

$(B)/tlsbench: tools/tlsbench.c
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(BASE_CFLAGS) $(OPT) -o $@ $< -lssl -lcrypto

# Preloaded by integration tests into meridian (no sanitizer of its own).
$(B)/tests/faildirsync.so: tests/preload/faildirsync.c
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(BASE_CFLAGS) -O2 -shared -fPIC -o $@ $< -ldl

$(CORE_TESTS): $(B)/tests/%: $(B)/tests/unit/%.o $(B)/tests/unit/testutil.o $(B)/libcore.a
	$(call say,LD,$@)
	$(Q)$(CC) $(OPT) -o $@ $^ $(PKG_LIBS) $(shell pkg-config --libs cmocka)

$(ROUTER_TESTS): $(B)/tests/%: $(B)/tests/unit/%.o $(B)/tests/unit/testutil.o $(B)/librouter.a \
		$(B)/libcore.a
	$(call say,LD,$@)
	$(Q)$(CC) $(OPT) -o $@ $^ $(PKG_LIBS) $(shell pkg-config --libs cmocka)

$(CONTROL_TESTS): $(B)/tests/%: $(B)/tests/unit/%.o $(B)/tests/unit/testutil.o \
		$(B)/libcontrol.a $(B)/librouter.a $(B)/libcore.a
	$(call say,LD,$@)
	$(Q)$(CC) $(OPT) -o $@ $^ $(PKG_LIBS) $(shell pkg-config --libs cmocka)

# test_ctl_X tests ctl/X.c: meridianctl's objects but its main(), and libcore.
$(CTL_TESTS): $(B)/tests/%: $(B)/tests/unit/%.o $(filter-out $(B)/ctl/meridianctl.o,\
		$(CTL_SRCS:%.c=$(B)/%.o)) $(B)/libcore.a
	$(call say,LD,$@)
	$(Q)$(CC) $(OPT) -o $@ $^ $(CTL_LIBS) $(shell pkg-config --libs cmocka)

# Installs the Debian packages the build and the tests need (root, apt).
deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PACKAGES)

check-deps:
	@dpkg -s $(DEB_PACKAGES) >/dev/null 2>&1 || $(MAKE) --no-print-directory deps
	@command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm

# Unit tests (cmocka) then integration tests (real processes on loopback)
# for one build variant; tests/run.sh prints the "N passed, N failed" line.
test-variant: build testdata
	@FUZZ_DIR=$(FUZZ_DIR) bash tests/run.sh $(B)

test: check-deps
	@$(MAKE) --no-print-directory format-check
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory fuzz-build
	@$(MAKE) --no-print-directory test-variant VARIANT=release
	@$(MAKE) --no-print-directory test-variant VARIANT=asan FUZZ_DIR=$(FUZZ_B)

# libFuzzer harnesses (tests/fuzz/fuzz_*.c, docs/fuzzing.md), built with
# clang from the same sources into their own folder: the code under test with
# fuzzer-no-link coverage and ASan+UBSan, each harness linked with libFuzzer.
# `make fuzz` runs each for FUZZ_SECONDS on a copy of its committed corpus;
# `make test` runs each over its corpus for a short budget, one unit each.
FUZZ_CC := clang-14
FUZZ_B := build/fuzz
FUZZ_SECONDS ?= 60
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS := $(BASE_CFLAGS) -O1 -fno-omit-frame-pointer $(FUZZ_SAN)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_B)/%)

$(FUZZ_B)/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	$(call say,CC,$@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_B)/libcore.a: $(CORE_SRCS:%.c=$(FUZZ_B)/%.o)
	@rm -f $@
	$(call say,AR,$@)
	$(Q)ar rcs $@ $^

$(FUZZ_B)/librouter.a: $(ROUTER_SRCS:%.c=$(FUZZ_B)/%.o) $(CONTROL_SRCS:%.c=$(FUZZ_B)/%.o) \
		$(B)/gen/dashboard_html.c
	@rm -f $@
	$(call say,CC,$@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -c $(B)/gen/dashboard_html.c -o $(FUZZ_B)/dashboard_html.o
	$(call say,AR,$@)
	$(Q)ar rcs $@ $(filter %.o,$^) $(FUZZ_B)/dashboard_html.o

$(FUZZ_BINS): $(FUZZ_B)/%: $(FUZZ_B)/tests/fuzz/%.o $(FUZZ_B)/librouter.a $(FUZZ_B)/libcore.a
	$(call say,LD,$@)
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(PKG_LIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: check-deps fuzz-build
	@for f in $(FUZZ_BINS); do \
		bash tests/fuzz/run.sh $$f $(FUZZ_SECONDS) \
			$(FUZZ_B)/corpus/$$(basename $$f) || exit 1; \
	done

# The CC0 country database the example configuration reads (an npm package
# of ip-location-db; npm is the one registry for data here).
GEOIP_PACKAGE := @ip-location-db/geo-whois-asn-country-mmdb@2.3.2026061719
geo/data/country.mmdb:
	@mkdir -p geo/data/.fetch
	cd geo/data/.fetch && npm pack --silent $(GEOIP_PACKAGE) >/dev/null && \
		tar xzf *.tgz package/geo-whois-asn-country.mmdb
	mv geo/data/.fetch/package/geo-whois-asn-country.mmdb $@
	rm -rf geo/data/.fetch

# The C sources as .clang-format says (not build/, not the fuzz corpora).
# format-check changes nothing and names each file that differs.
CLANG_FORMAT := clang-format-14
FORMAT_SRCS = $(shell find . \( -path ./build -o -path ./tests/fuzz/corpus -o -path ./.git \) \
	-prune -o \( -name '*.c' -o -name '*.h' \) -print | sed 's|^\./||' | sort)

format: need-clang-format
	@$(CLANG_FORMAT) -i --style=file $(FORMAT_SRCS)

format-check: need-clang-format
	@bad=0; for f in $(FORMAT_SRCS); do \
		if ! $(CLANG_FORMAT) --style=file --dry-run -Werror $$f >/dev/null 2>&1; then \
			echo "not formatted: $$f"; bad=1; \
		fi; \
	done; \
	if [ $$bad -ne 0 ]; then echo "run 'make format'" >&2; exit 1; fi

need-clang-format:
	@command -v $(CLANG_FORMAT) >/dev/null || { echo "no $(CLANG_FORMAT): make deps" >&2; exit 1; }

run: all
	@bash tools/demo.sh

bench: all
	@bash tools/bench.sh

clean:
	rm -rf build meridian meridianctl

-include $(shell find build -name '*.d' 2>/dev/null)
