# Build and install ssed: the daemon, libssed (shared and static), its header, a pkg-config
# file and the systemd units (the service and its sockets).
#
#   make                                   cargo build --release
#   sudo make install                      into PREFIX (/usr/local), nothing rebuilt
#   make install DESTDIR=/tmp/pkg PREFIX=/usr   staged, for a package
#   sudo make uninstall                    removes exactly what install put there
#
# install uses the artefacts already in target/release (building them only when one is
# missing), so it can run as root after a build, and beside a running `cargo test`.

PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/bin
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
UNITDIR      ?= $(PREFIX)/lib/systemd/system
DESTDIR      ?=

CARGO   ?= cargo
INSTALL ?= install
ROOT    := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
RELEASE := $(abspath $(or $(CARGO_TARGET_DIR),$(ROOT)/target))/release
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' $(ROOT)/Cargo.toml | head -n 1)
BUILT   := $(RELEASE)/ssed $(RELEASE)/libssed.so $(RELEASE)/libssed.a

INSTALLED := $(BINDIR)/ssed $(LIBDIR)/libssed.so $(LIBDIR)/libssed.a $(INCLUDEDIR)/ssed.h \
             $(PKGCONFIGDIR)/ssed.pc $(UNITDIR)/ssed.service $(UNITDIR)/ssed.socket

.PHONY: all install uninstall

all:
	$(CARGO) build --release --manifest-path $(ROOT)/Cargo.toml

install:
	@for f in $(BUILT); do [ -e $$f ] || { \
	  echo "$$f is missing: $(CARGO) build --release"; \
	  $(CARGO) build --release --manifest-path $(ROOT)/Cargo.toml || exit 1; break; }; done
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
	  $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(UNITDIR)
	$(INSTALL) -m 755 $(RELEASE)/ssed $(DESTDIR)$(BINDIR)/ssed
	$(INSTALL) -m 755 $(RELEASE)/libssed.so $(DESTDIR)$(LIBDIR)/libssed.so
	$(INSTALL) -m 644 $(RELEASE)/libssed.a $(DESTDIR)$(LIBDIR)/libssed.a
	$(INSTALL) -m 644 $(ROOT)/include/ssed.h $(DESTDIR)$(INCLUDEDIR)/ssed.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    $(ROOT)/ssed.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/ssed.pc
	sed -e 's|/usr/local/bin/ssed|$(BINDIR)/ssed|' \
	    $(ROOT)/examples/systemd/ssed.service > $(DESTDIR)$(UNITDIR)/ssed.service
	sed -e 's|/usr/local/lib/systemd/system|$(UNITDIR)|' \
	    $(ROOT)/examples/systemd/ssed.socket > $(DESTDIR)$(UNITDIR)/ssed.socket
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/ssed.pc $(DESTDIR)$(UNITDIR)/ssed.service \
	    $(DESTDIR)$(UNITDIR)/ssed.socket
	@# The loader finds a new library in /usr/local/lib only after ldconfig.
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then \
	  echo ldconfig; ldconfig; fi

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then \
	  echo ldconfig; ldconfig; fi
