# Installing the daemon, its sample config, systemd units, sysusers.d
# snippet and man pages. Included by the top-level Makefile; relies on
# nothing from it but PREFIX, DESTDIR and DAEMON (each has a default here).
#
# Where things go (all under $(DESTDIR)):
#   $(SBINDIR)/tablelockd                 SBINDIR = $(PREFIX)/sbin
#   $(SYSCONFDIR)/tablelockd/tablelockd.conf
#       SYSCONFDIR is /etc when PREFIX is /usr, else $(PREFIX)/etc
#       (/usr/local/etc by default). The config is installed only when none
#       is there yet, so an operator's edits survive a reinstall.
#   $(SYSTEMD_UNIT_DIR)/tablelockd.service, tablelockd.socket
#       /lib/systemd/system when PREFIX is /usr, else $(PREFIX)/lib/systemd/system
#       (systemd also reads /usr/local/lib/systemd/system). ExecStart is
#       rewritten to the installed daemon and config.
#   $(SYSUSERS_DIR)/tablelockd.conf       the tablelockd user and group
#       /usr/lib/sysusers.d when PREFIX is /usr, else $(PREFIX)/lib/sysusers.d
#   $(MANDIR)/man1/tablelock.1, man5/tablelockd.conf.5, man8/tablelockd.8
#       MANDIR = $(PREFIX)/share/man
#   $(DATADIR)/tablelockd/prometheus/tablelockd.rules.yml
#       the alert rules, for Prometheus's rule_files; DATADIR = $(PREFIX)/share
# Each directory variable can be set on the command line to override it.
#
# `install` and `uninstall` are prerequisite-only rules (no recipe), so any
# number of included makefiles can add their part the same way
# (client/client.mk adds client-install: the CLI, libtablelock, its header
# and tablelock.pc, then ldconfig). Do not turn them into `install::`
# here alone: make refuses a target that has both : and :: rules.

PREFIX ?= /usr/local
DAEMON ?= daemon/tablelockd

# /usr/ and /usr are the same prefix.
INSTALL_PREFIX = $(patsubst %/,%,$(PREFIX))
INSTALL_IS_USR = $(filter /usr,$(INSTALL_PREFIX))

SBINDIR ?= $(INSTALL_PREFIX)/sbin
SYSCONFDIR ?= $(if $(INSTALL_IS_USR),/etc,$(INSTALL_PREFIX)/etc)
SYSTEMD_UNIT_DIR ?= $(if $(INSTALL_IS_USR),/lib/systemd/system,$(INSTALL_PREFIX)/lib/systemd/system)
SYSUSERS_DIR ?= $(if $(INSTALL_IS_USR),/usr/lib/sysusers.d,$(INSTALL_PREFIX)/lib/sysusers.d)
MANDIR ?= $(INSTALL_PREFIX)/share/man
DATADIR ?= $(INSTALL_PREFIX)/share
RULESDIR = $(DATADIR)/tablelockd/prometheus

INSTALL ?= install

# The ExecStart line as written in systemd/tablelockd.service, and as it
# must read once installed.
UNIT_EXECSTART_SRC := ExecStart=/usr/local/sbin/tablelockd -c /etc/tablelockd/tablelockd.conf
UNIT_EXECSTART = ExecStart=$(SBINDIR)/tablelockd -c $(SYSCONFDIR)/tablelockd/tablelockd.conf

DAEMON_MAN_PAGES := man/tablelock.1 man/tablelockd.conf.5 man/tablelockd.8

.PHONY: install uninstall daemon-install daemon-uninstall
install: daemon-install
uninstall: daemon-uninstall

daemon-install: $(DAEMON)
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(SYSCONFDIR)/tablelockd \
		$(DESTDIR)$(SYSTEMD_UNIT_DIR) $(DESTDIR)$(SYSUSERS_DIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(RULESDIR)
	$(INSTALL) -m 755 $(DAEMON) $(DESTDIR)$(SBINDIR)/tablelockd
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/tablelockd/tablelockd.conf ]; then \
		echo "kept $(DESTDIR)$(SYSCONFDIR)/tablelockd/tablelockd.conf (the sample is conf/tablelockd.conf)"; \
	else \
		echo "$(INSTALL) -m 644 conf/tablelockd.conf $(DESTDIR)$(SYSCONFDIR)/tablelockd/tablelockd.conf"; \
		$(INSTALL) -m 644 conf/tablelockd.conf $(DESTDIR)$(SYSCONFDIR)/tablelockd/tablelockd.conf; \
	fi
	grep -qxF '$(UNIT_EXECSTART_SRC)' systemd/tablelockd.service || \
		{ echo "systemd/tablelockd.service: no line '$(UNIT_EXECSTART_SRC)' to rewrite" >&2; exit 1; }
	sed 's|^$(UNIT_EXECSTART_SRC)$$|$(UNIT_EXECSTART)|' systemd/tablelockd.service \
		>$(DESTDIR)$(SYSTEMD_UNIT_DIR)/tablelockd.service.tmp
	chmod 644 $(DESTDIR)$(SYSTEMD_UNIT_DIR)/tablelockd.service.tmp
	mv -f $(DESTDIR)$(SYSTEMD_UNIT_DIR)/tablelockd.service.tmp \
		$(DESTDIR)$(SYSTEMD_UNIT_DIR)/tablelockd.service
	$(INSTALL) -m 644 systemd/tablelockd.socket $(DESTDIR)$(SYSTEMD_UNIT_DIR)/tablelockd.socket
	$(INSTALL) -m 644 systemd/tablelockd.sysusers $(DESTDIR)$(SYSUSERS_DIR)/tablelockd.conf
	$(INSTALL) -m 644 man/tablelock.1 $(DESTDIR)$(MANDIR)/man1/tablelock.1
	$(INSTALL) -m 644 man/tablelockd.conf.5 $(DESTDIR)$(MANDIR)/man5/tablelockd.conf.5
	$(INSTALL) -m 644 man/tablelockd.8 $(DESTDIR)$(MANDIR)/man8/tablelockd.8
	$(INSTALL) -m 644 prometheus/tablelockd.rules.yml $(DESTDIR)$(RULESDIR)/tablelockd.rules.yml
	@if [ -z "$(DESTDIR)" ]; then \
		echo "next: systemd-sysusers tablelockd.conf; systemctl daemon-reload;"; \
		echo "      systemctl enable --now tablelockd.socket (see tablelockd(8))"; \
	fi

# Leaves the config alone: it may hold the operator's edits.
daemon-uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/tablelockd \
		$(DESTDIR)$(SYSTEMD_UNIT_DIR)/tablelockd.service \
		$(DESTDIR)$(SYSTEMD_UNIT_DIR)/tablelockd.socket \
		$(DESTDIR)$(SYSUSERS_DIR)/tablelockd.conf \
		$(DESTDIR)$(MANDIR)/man1/tablelock.1 $(DESTDIR)$(MANDIR)/man5/tablelockd.conf.5 \
		$(DESTDIR)$(MANDIR)/man8/tablelockd.8 $(DESTDIR)$(RULESDIR)/tablelockd.rules.yml
	-rmdir $(DESTDIR)$(RULESDIR) $(DESTDIR)$(DATADIR)/tablelockd 2>/dev/null
