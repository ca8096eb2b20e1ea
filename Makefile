# tablelockd: build, test, run. See README.md.

CC ?= cc
PKGS := libevent libevent_openssl openssl jansson libmariadb inih libsystemd
# The build directory keeps plain and sanitizer builds apart.
BUILD ?= build
SAN ?=

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wmissing-prototypes \
	-Wstrict-prototypes -Wpointer-arith -Wvla -Wnull-dereference
OPT ?= -O2 -g
CPPFLAGS += -I. -D_GNU_SOURCE
CFLAGS += -std=c11 $(OPT) $(WARN) $(SAN) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDFLAGS += $(SAN)
LDLIBS += $(shell pkg-config --libs $(PKGS) 2>/dev/null)

UTIL_SRC := $(sort $(wildcard util/*.c))
PROTO_SRC := $(sort $(wildcard proto/*.c))
CONF_SRC := $(sort $(wildcard conf/*.c))
DAEMON_SRC := $(sort $(wildcard daemon/*.c))
# The SQL text module (lexer, binder, firewall, effects): daemon/sqltext.h.
SQLTEXT_SRC := $(sort $(wildcard daemon/sqltext_*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))
DAEMON_OBJ := $(call obj,$(DAEMON_SRC) $(PROTO_SRC) $(CONF_SRC) $(UTIL_SRC))
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))

DAEMON := daemon/tablelockd

.PHONY: all deps deps-test deps-bench units fuzz test test-unit test-integration test-asan run \
	clean bench
all: deps $(DAEMON)

# Debian packages, installed when missing (scripts/deps.sh has the lists):
# `make` and `make run` take what building and running need, `make test`
# and `make bench` add their own tools.
deps:
	@sh scripts/deps.sh build run
deps-test:
	@sh scripts/deps.sh build run test
deps-bench:
	@sh scripts/deps.sh build run bench

# Replaced by rename, never rewritten in place: a running daemon (a test,
# a benchmark) keeps its binary intact.
$(DAEMON): $(BUILD)/tablelockd
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/tablelockd: $(DAEMON_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

# Each unit test links the module it tests and the small shared base
# (util/ and the error codes); a test_proto_* test links all of proto/.
UNIT_BASE := $(call obj,$(UTIL_SRC) proto/proto_error.c)
PROTO_OBJ := $(call obj,$(PROTO_SRC))
UNIT_DEPS_test_lockmgr := $(call obj,daemon/lockmgr.c)
UNIT_DEPS_test_mdl := $(call obj,daemon/mdl.c)
UNIT_DEPS_test_utf8 := $(call obj,util/utf8.c)
UNIT_DEPS_test_hostport := $(call obj,util/hostport.c)
UNIT_DEPS_test_sqltext := $(call obj,$(SQLTEXT_SRC))
UNIT_DEPS_test_sqltext_lock := $(call obj,$(SQLTEXT_SRC)) $(PROTO_OBJ)
UNIT_DEPS_test_leaseid := $(call obj,daemon/leaseid.c daemon/log.c)
UNIT_DEPS_test_conf := $(call obj,conf/conf.c)
UNIT_DEPS_test_access := $(call obj,daemon/access.c proto/proto_table.c)
.SECONDEXPANSION:
$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(UNIT_BASE) $$(or $$(UNIT_DEPS_$$*),$$(PROTO_OBJ))
	$(CC) $(LDFLAGS) -o $@ $(sort $(filter %.o,$^)) $(LDLIBS) -lcmocka

units: $(UNIT_BIN)

# `make test`: every test, ending with one line "N passed, N failed".
test: deps-test
	@$(MAKE) --no-print-directory $(DAEMON) units
	@sh tests/run.sh $(BUILD) $(DAEMON)

# The same suite under AddressSanitizer and UBSan, in its own build dir.
test-asan: deps-test
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
		SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" \
		build-asan/tablelockd units
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		sh tests/run.sh build-asan build-asan/tablelockd

run: all
	@sh scripts/run-sandbox.sh

# `make soak`: the protocol model (tests/integration/test_model.py) with
# random seeds for SOAK_MINUTES; SEED=... replays one. Stops by itself.
.PHONY: soak
SOAK_MINUTES ?= 10
soak: deps-test
	@$(MAKE) --no-print-directory $(DAEMON)
	@SOAK_MINUTES=$(SOAK_MINUTES) SEED=$(SEED) sh tests/soak.sh $(DAEMON)

clean:
	rm -rf build build-asan $(DAEMON)

# Each part keeps its own build rules beside its sources.
-include client/client.mk
-include mk/install.mk
-include tests/fuzz/fuzz.mk
-include bench/bench.mk

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
