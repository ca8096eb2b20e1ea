# libFuzzer harnesses: built with clang into $(BUILD)/fuzz/, run by `make fuzz`.
#
# Included by the top-level Makefile (which provides BUILD and CPPFLAGS),
# and usable alone (`make -f tests/fuzz/fuzz.mk fuzz-build`, as
# tests/fuzz/run.sh does), hence the defaults below. The pure modules are
# compiled again here with clang and the fuzzer's instrumentation, into
# $(BUILD)/fuzz/obj/, apart from the plain and ASan builds made with $(CC).

BUILD ?= build
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_DIR := $(BUILD)/fuzz
FUZZ_NAMES := request table sqltext conf access

FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wmissing-prototypes \
	-Wstrict-prototypes -Wpointer-arith -Wvla -Wnull-dereference
FUZZ_CPPFLAGS := -I. -D_GNU_SOURCE $(filter-out -I. -D_GNU_SOURCE,$(CPPFLAGS))
FUZZ_CFLAGS := -std=c11 -g -O1 -fno-omit-frame-pointer $(FUZZ_WARN) $(FUZZ_SAN) \
	$(shell pkg-config --cflags jansson inih 2>/dev/null)
FUZZ_LDLIBS := $(shell pkg-config --libs jansson inih 2>/dev/null)

# What each harness links besides itself.
SQLTEXT_SRC ?= $(sort $(wildcard daemon/sqltext_*.c))
FUZZ_BASE := util/buf.c util/utf8.c util/xmalloc.c proto/proto_error.c
FUZZ_SRC_request := proto/proto_frame.c proto/proto_request.c proto/proto_response.c \
	proto/proto_table.c
FUZZ_SRC_table := proto/proto_table.c $(SQLTEXT_SRC)
FUZZ_SRC_sqltext := $(SQLTEXT_SRC)
FUZZ_SRC_conf := conf/conf.c daemon/access.c proto/proto_table.c util/hostport.c
FUZZ_SRC_access := daemon/access.c proto/proto_table.c

fuzz_obj = $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(1))
FUZZ_BIN := $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_NAMES))

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BIN)

# Each harness for FUZZ_SECONDS, one at a time, seeds from tests/fuzz/corpus.
fuzz: fuzz-build
	@FUZZ_NO_BUILD=1 sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(BUILD)

# Library code: coverage instrumentation without libFuzzer's main().
$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_DIR)/harness/%.o: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

define FUZZ_LINK_RULE
$(FUZZ_DIR)/fuzz_$(1): $(FUZZ_DIR)/harness/fuzz_$(1).o $(call fuzz_obj,$(FUZZ_BASE) $(FUZZ_SRC_$(1)))
	$$(FUZZ_CC) $$(FUZZ_SAN) -fsanitize=fuzzer -o $$@ $$^ $$(FUZZ_LDLIBS)
endef
$(foreach n,$(FUZZ_NAMES),$(eval $(call FUZZ_LINK_RULE,$(n))))

# The top-level Makefile (which defines obj) already includes every .d
# under $(BUILD); alone, include ours.
ifndef obj
-include $(shell find $(FUZZ_DIR) -name '*.d' 2>/dev/null)
endif
