# Client side: libtablelock (static and shared), the tablelock CLI, the
# example and the library's test driver. Included by the top-level Makefile,
# which provides BUILD, CC, CFLAGS, CPPFLAGS, LDFLAGS, obj and PROTO_SRC.
#
# Everything is linked under $(BUILD)/client/ and then copied into client/
# when it differs, so that client/tablelock always matches the last build
# (plain or sanitizer) instead of whichever was newer.

CLIENT_VERSION := $(shell sed -n 's/^\#define TABLELOCK_VERSION "\(.*\)"/\1/p' client/tablelock.h)
CLIENT_SOVERSION := 1
CLIENT_SONAME := libtablelock.so.$(CLIENT_SOVERSION)

PREFIX ?= /usr/local
CLIENT_BINDIR = $(PREFIX)/bin
CLIENT_LIBDIR = $(PREFIX)/lib
CLIENT_INCLUDEDIR = $(PREFIX)/include
CLIENT_PKGCONFIGDIR = $(CLIENT_LIBDIR)/pkgconfig

CLIENT_LDLIBS := $(shell pkg-config --libs jansson 2>/dev/null || echo -ljansson)

CLIENT_LIB_SRC := client/tablelock.c client/tablelock_result.c
CLIENT_CLI_SRC := client/cli.c client/cli_print.c client/cli_status.c client/cli_exec.c \
	client/cli_shell.c

# The library's objects, proto/ included, are position independent: they
# go into the shared library and into a static one that may itself end up
# in someone's shared object.
CLIENT_PIC_OBJ := $(patsubst %.c,$(BUILD)/pic/%.o,$(CLIENT_LIB_SRC) $(PROTO_SRC))
CLIENT_CLI_OBJ := $(call obj,$(CLIENT_CLI_SRC) $(PROTO_SRC))

CLIENT_OUT := client/tablelock client/libtablelock.a client/libtablelock.so \
	client/examples/lease-update client/tests/tablelock-driver

.PHONY: client client-install client-uninstall client-clean install uninstall client-force
all: client/tablelock client/libtablelock.a client/libtablelock.so client/examples/lease-update
client: $(CLIENT_OUT)
# `make test` builds `units` before running the suite, which drives these.
units: $(CLIENT_OUT)
install: client-install
uninstall: client-uninstall
clean: client-clean

$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -fPIC -MMD -MP -c -o $@ $<

# One relocatable object with every symbol but tablelock_* made local, so
# that proto/'s buf_*, xmalloc, … cannot clash with the program's own.
$(BUILD)/client/libtablelock.o: $(CLIENT_PIC_OBJ)
	@mkdir -p $(dir $@)
	$(LD) -r -o $@ $^
	objcopy --localize-hidden --wildcard --keep-global-symbol='tablelock_*' $@

$(BUILD)/client/libtablelock.a: $(BUILD)/client/libtablelock.o
	rm -f $@
	$(AR) rcs $@ $<

$(BUILD)/client/libtablelock.so: $(CLIENT_PIC_OBJ) client/tablelock.map
	$(CC) $(LDFLAGS) -shared -Wl,-soname,$(CLIENT_SONAME) \
		-Wl,--version-script=client/tablelock.map $(if $(SAN),,-Wl,-z,defs) \
		-o $@ $(CLIENT_PIC_OBJ) $(CLIENT_LDLIBS)

# The CLI uses proto/ itself (line framing of its input) beside the library.
$(BUILD)/client/tablelock: $(CLIENT_CLI_OBJ) $(BUILD)/client/libtablelock.a
	$(CC) $(LDFLAGS) -o $@ $^ $(CLIENT_LDLIBS)

# The example is built the way a user builds it: header and library only.
$(BUILD)/client/examples/lease-update: client/examples/lease-update.c client/tablelock.h \
		$(BUILD)/client/libtablelock.a
	@mkdir -p $(dir $@)
	$(CC) -Iclient $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/client/libtablelock.a $(CLIENT_LDLIBS)

# The driver uses proto/buf.c's helpers itself; the library keeps its copy
# private.
$(BUILD)/client/tests/tablelock-driver: $(call obj,client/tests/driver.c proto/buf.c) \
		$(BUILD)/client/libtablelock.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CLIENT_LDLIBS)

$(CLIENT_OUT): client/%: $(BUILD)/client/% client-force
	@mkdir -p $(dir $@)
	@cmp -s $< $@ || { echo "cp $< $@"; cp $< $@; }

$(BUILD)/client/tablelock.pc: client/tablelock.pc.in client/tablelock.h
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(CLIENT_LIBDIR)|' \
		-e 's|@INCLUDEDIR@|$(CLIENT_INCLUDEDIR)|' -e 's|@VERSION@|$(CLIENT_VERSION)|' \
		$< >$@

# The .pc is regenerated on every install: PREFIX may differ from the last.
client-install: client/tablelock client/libtablelock.a client/libtablelock.so
	@rm -f $(BUILD)/client/tablelock.pc
	@$(MAKE) --no-print-directory $(BUILD)/client/tablelock.pc
	install -d $(DESTDIR)$(CLIENT_BINDIR) $(DESTDIR)$(CLIENT_LIBDIR) \
		$(DESTDIR)$(CLIENT_INCLUDEDIR) $(DESTDIR)$(CLIENT_PKGCONFIGDIR)
	install -m 755 client/tablelock $(DESTDIR)$(CLIENT_BINDIR)/tablelock
	install -m 644 client/libtablelock.a $(DESTDIR)$(CLIENT_LIBDIR)/libtablelock.a
	install -m 755 client/libtablelock.so \
		$(DESTDIR)$(CLIENT_LIBDIR)/libtablelock.so.$(CLIENT_VERSION)
	ln -sf libtablelock.so.$(CLIENT_VERSION) $(DESTDIR)$(CLIENT_LIBDIR)/$(CLIENT_SONAME)
	ln -sf $(CLIENT_SONAME) $(DESTDIR)$(CLIENT_LIBDIR)/libtablelock.so
	install -m 644 client/tablelock.h $(DESTDIR)$(CLIENT_INCLUDEDIR)/tablelock.h
	install -m 644 $(BUILD)/client/tablelock.pc $(DESTDIR)$(CLIENT_PKGCONFIGDIR)/tablelock.pc

client-uninstall:
	rm -f $(DESTDIR)$(CLIENT_BINDIR)/tablelock $(DESTDIR)$(CLIENT_LIBDIR)/libtablelock.a \
		$(DESTDIR)$(CLIENT_LIBDIR)/libtablelock.so.$(CLIENT_VERSION) \
		$(DESTDIR)$(CLIENT_LIBDIR)/$(CLIENT_SONAME) $(DESTDIR)$(CLIENT_LIBDIR)/libtablelock.so \
		$(DESTDIR)$(CLIENT_INCLUDEDIR)/tablelock.h $(DESTDIR)$(CLIENT_PKGCONFIGDIR)/tablelock.pc

client-clean:
	rm -f $(CLIENT_OUT)
	rm -rf client/python/__pycache__ client/python/tablelock/__pycache__
