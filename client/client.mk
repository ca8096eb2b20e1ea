# Client side: libtablelock (static and shared), the tablelock CLI, the
# example and the library's test driver. Included by the top-level Makefile,
# which provides BUILD, CC, CFLAGS, CPPFLAGS, LDFLAGS, obj, PROTO_SRC and
# UTIL_SRC.
#
# Everything is linked under $(BUILD)/client/ and then copied into client/
# when it differs, so that client/tablelock always matches the last build
# (plain or sanitizer) instead of whichever was newer.

CLIENT_VERSION := $(shell sed -n 's/^\#define TABLELOCK_VERSION "\(.*\)"/\1/p' client/tablelock.h)
CLIENT_SOVERSION := 1
CLIENT_SONAME := libtablelock.so.$(CLIENT_SOVERSION)

PREFIX ?= /usr/local
CLIENT_PREFIX = $(patsubst %/,%,$(PREFIX))
CLIENT_BINDIR = $(CLIENT_PREFIX)/bin
CLIENT_LIBDIR = $(CLIENT_PREFIX)/lib
CLIENT_INCLUDEDIR = $(CLIENT_PREFIX)/include
CLIENT_PKGCONFIGDIR = $(CLIENT_LIBDIR)/pkgconfig

# How a program linked with -ltablelock finds the installed library at run
# time. When CLIENT_LIBDIR is a directory that ldconfig caches (ld.so.conf.d
# and the system's own: /usr/local/lib and /usr/lib on Debian), through
# that cache: `make install` and `make uninstall` run ldconfig, as root and
# unless DESTDIR is set (a package's own trigger does it then). Anywhere
# else through an rpath: the installed tablelock.pc adds
# -Wl,-rpath,${libdir} to Libs, so that the documented
# `cc prog.c $(pkg-config --cflags --libs tablelock)` works as it is.
# PC_RPATH=yes or no overrides that choice (auto).
PC_RPATH ?= auto
LDCONFIG ?= $(firstword $(wildcard /sbin/ldconfig /usr/sbin/ldconfig) ldconfig)

CLIENT_LDLIBS := $(shell pkg-config --libs jansson 2>/dev/null || echo -ljansson)

CLIENT_LIB_SRC := client/tablelock.c client/tablelock_result.c
CLIENT_CLI_SRC := client/cli.c client/cli_print.c client/cli_status.c client/cli_exec.c \
	client/cli_shell.c

# The library's objects, proto/ and util/ included, are position
# independent: they go into the shared library and into a static one that
# may itself end up in someone's shared object.
CLIENT_PIC_OBJ := $(patsubst %.c,$(BUILD)/pic/%.o,$(CLIENT_LIB_SRC) $(PROTO_SRC) $(UTIL_SRC))
CLIENT_CLI_OBJ := $(call obj,$(CLIENT_CLI_SRC) $(PROTO_SRC) $(UTIL_SRC))

CLIENT_OUT := client/tablelock client/libtablelock.a client/libtablelock.so \
	client/examples/lease-update client/tests/tablelock-driver

# What a program built in the tree, without installing, needs beside the
# header and the libraries: the soname link that the dynamic linker looks
# for, and a pkg-config file for the tree (see "Building a program" in
# client/README.md).
CLIENT_TREE := client/$(CLIENT_SONAME) client/tablelock-uninstalled.pc

.PHONY: client client-install client-uninstall client-clean install uninstall client-force
all: client/tablelock client/libtablelock.a client/libtablelock.so client/examples/lease-update \
	$(CLIENT_TREE)
client: $(CLIENT_OUT) $(CLIENT_TREE)
# `make test` builds `units` before running the suite, which drives these.
units: $(CLIENT_OUT)
install: client-install
uninstall: client-uninstall
clean: client-clean

$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -fPIC -MMD -MP -c -o $@ $<

# One relocatable object with every symbol but tablelock_* made local, so
# that util/'s buf_*, xmalloc, … cannot clash with the program's own.
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

# The CLI uses proto/ and util/ itself (line framing of its input, buffers)
# beside the library.
$(BUILD)/client/tablelock: $(CLIENT_CLI_OBJ) $(BUILD)/client/libtablelock.a
	$(CC) $(LDFLAGS) -o $@ $^ $(CLIENT_LDLIBS)

# The example is built the way a user builds it: header and library only.
$(BUILD)/client/examples/lease-update: client/examples/lease-update.c client/tablelock.h \
		$(BUILD)/client/libtablelock.a
	@mkdir -p $(dir $@)
	$(CC) -Iclient $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/client/libtablelock.a $(CLIENT_LDLIBS)

# The driver uses util/ itself; the library keeps its copy private.
$(BUILD)/client/tests/tablelock-driver: $(call obj,client/tests/driver.c $(UTIL_SRC)) \
		$(BUILD)/client/libtablelock.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CLIENT_LDLIBS)

$(CLIENT_OUT): client/%: $(BUILD)/client/% client-force
	@mkdir -p $(dir $@)
	@cmp -s $< $@ || { echo "cp $< $@"; cp $< $@; }

# $(call client_pc,PREFIX,LIBDIR,INCLUDEDIR,RPATH): a shell command that
# prints client/tablelock.pc.in filled in. RPATH is the text that goes
# before -ltablelock; it is expanded inside double quotes, so the pc's own
# ${libdir} is written \$${libdir} there.
client_pc = sed -e 's|@PREFIX@|$(1)|' -e 's|@LIBDIR@|$(2)|' -e 's|@INCLUDEDIR@|$(3)|' \
	-e 's|@VERSION@|$(CLIENT_VERSION)|' -e "s|@RPATH@|$(4)|" client/tablelock.pc.in

# pkg-config reads tablelock-uninstalled.pc before tablelock.pc in each
# directory of PKG_CONFIG_PATH: with PKG_CONFIG_PATH=$PWD/client, the usual
# compile line builds against this tree, and the program finds
# client/libtablelock.so.1 through its rpath. Rewritten only when it
# changes (the tree may have moved).
client/tablelock-uninstalled.pc: client/tablelock.pc.in client/tablelock.h client-force
	@$(call client_pc,$(CURDIR),$(CURDIR)/client,$(CURDIR)/client,-Wl$(comma)-rpath$(comma)\$${libdir} ) >$@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else echo "write $@"; mv -f $@.tmp $@; fi
comma := ,

client/$(CLIENT_SONAME):
	ln -sf libtablelock.so $@

# A shell command that succeeds when CLIENT_LIBDIR is, symlinks resolved
# (/lib is /usr/lib on Debian), one of the directories `ldconfig -v`
# lists (-N -X: it writes nothing). ldconfig leaves out a directory that
# does not exist, so this runs once `install -d` has made it.
client_libdir_is_system = $(LDCONFIG) -v -N -X 2>/dev/null | sed -n 's|^\(/[^:]*\):.*|\1|p' | \
	while read -r dir; do readlink -m "$$dir"; done | \
	grep -qxF "$$(readlink -m '$(CLIENT_LIBDIR)')"

# The .pc is written on every install: PREFIX may differ from the last.
client-install: client/tablelock client/libtablelock.a client/libtablelock.so
	@case '$(PC_RPATH)' in auto | yes | no) ;; \
	*) echo "PC_RPATH must be auto, yes or no, not '$(PC_RPATH)'" >&2; exit 1 ;; esac
	install -d $(DESTDIR)$(CLIENT_BINDIR) $(DESTDIR)$(CLIENT_LIBDIR) \
		$(DESTDIR)$(CLIENT_INCLUDEDIR) $(DESTDIR)$(CLIENT_PKGCONFIGDIR)
	install -m 755 client/tablelock $(DESTDIR)$(CLIENT_BINDIR)/tablelock
	install -m 644 client/libtablelock.a $(DESTDIR)$(CLIENT_LIBDIR)/libtablelock.a
	install -m 755 client/libtablelock.so \
		$(DESTDIR)$(CLIENT_LIBDIR)/libtablelock.so.$(CLIENT_VERSION)
	ln -sf libtablelock.so.$(CLIENT_VERSION) $(DESTDIR)$(CLIENT_LIBDIR)/$(CLIENT_SONAME)
	ln -sf $(CLIENT_SONAME) $(DESTDIR)$(CLIENT_LIBDIR)/libtablelock.so
	install -m 644 client/tablelock.h $(DESTDIR)$(CLIENT_INCLUDEDIR)/tablelock.h
	@mkdir -p $(BUILD)/client
	@set -e; \
	if $(client_libdir_is_system); then system=yes; else system=; fi; \
	case '$(PC_RPATH)' in yes) rpath=yes ;; no) rpath= ;; auto) rpath=; \
		[ -n "$$system" ] || rpath=yes ;; esac; \
	if [ -n "$$rpath" ]; then flags='-Wl,-rpath,$${libdir} '; with=with; else flags=; with=without; fi; \
	$(call client_pc,$(CLIENT_PREFIX),$(CLIENT_LIBDIR),$(CLIENT_INCLUDEDIR),$$flags) \
		>$(BUILD)/client/tablelock.pc; \
	echo "install -m 644 tablelock.pc $(DESTDIR)$(CLIENT_PKGCONFIGDIR)/tablelock.pc" \
		"($$with -Wl,-rpath)"; \
	install -m 644 $(BUILD)/client/tablelock.pc $(DESTDIR)$(CLIENT_PKGCONFIGDIR)/tablelock.pc; \
	if [ -n '$(DESTDIR)' ]; then :; \
	elif [ -n "$$system" ]; then $(client_ldconfig); \
	elif [ -n "$$rpath" ]; then \
		echo "note: the dynamic linker does not search $(CLIENT_LIBDIR): programs built"; \
		echo "      with tablelock.pc's flags find it through their rpath (client/README.md)"; \
	else \
		echo "note: the dynamic linker does not search $(CLIENT_LIBDIR), and PC_RPATH=no:"; \
		echo "      programs need an rpath or LD_LIBRARY_PATH (client/README.md)"; \
	fi

client-uninstall:
	rm -f $(DESTDIR)$(CLIENT_BINDIR)/tablelock $(DESTDIR)$(CLIENT_LIBDIR)/libtablelock.a \
		$(DESTDIR)$(CLIENT_LIBDIR)/libtablelock.so.$(CLIENT_VERSION) \
		$(DESTDIR)$(CLIENT_LIBDIR)/$(CLIENT_SONAME) $(DESTDIR)$(CLIENT_LIBDIR)/libtablelock.so \
		$(DESTDIR)$(CLIENT_INCLUDEDIR)/tablelock.h $(DESTDIR)$(CLIENT_PKGCONFIGDIR)/tablelock.pc
	@if [ -z '$(DESTDIR)' ] && $(client_libdir_is_system); then $(client_ldconfig); fi

# Refreshes the dynamic linker's cache, which only root can write.
client_ldconfig = \
	if [ "$$(id -u)" = 0 ]; then echo "$(LDCONFIG)"; $(LDCONFIG); \
	else echo "note: run $(LDCONFIG) as root, so that the dynamic linker's cache is current"; fi

client-clean:
	rm -f $(CLIENT_OUT) $(CLIENT_TREE)
	rm -rf client/python/__pycache__ client/python/tablelock/__pycache__
