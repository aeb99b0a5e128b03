# Build and install ssed: the daemon, libssed (shared and static), its header, a pkg-config
# file, the systemd units (the service and its sockets) and the manual page ssed(1).
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
MANDIR       ?= $(PREFIX)/share/man
DESTDIR      ?=

CARGO   ?= cargo
INSTALL ?= install
ROOT    := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
RELEASE := $(abspath $(or $(CARGO_TARGET_DIR),$(ROOT)/target))/release
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' $(ROOT)/Cargo.toml | head -n 1)
BUILT   := $(RELEASE)/ssed $(RELEASE)/libssed.so $(RELEASE)/libssed.a

INSTALLED := $(BINDIR)/ssed $(LIBDIR)/libssed.so $(LIBDIR)/libssed.a $(INCLUDEDIR)/ssed.h \
             $(PKGCONFIGDIR)/ssed.pc $(UNITDIR)/ssed.service $(UNITDIR)/ssed.socket \
             $(MANDIR)/man1/ssed.1

.PHONY: all install uninstall

all:
	$(CARGO) build --release --manifest-path $(ROOT)/Cargo.toml

install:
	@for f in $(BUILT); do [ -e $$f ] || { \
	  echo "$$f is missing: $(CARGO) build --release"; \
	  $(CARGO) build --release --manifest-path $(ROOT)/Cargo.toml || exit 1; break; }; done
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
	  $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man1
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
	$(INSTALL) -m 644 $(ROOT)/man/ssed.1 $(DESTDIR)$(MANDIR)/man1/ssed.1
	@# The loader finds a new library in /usr/local/lib only after ldconfig.
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then \
	  echo ldconfig; ldconfig; fi

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then \
	  echo ldconfig; ldconfig; fi

# ---- Devices: cross builds and Debian packages ------------------------------------------------
#
#   make cross-arm64    aarch64-unknown-linux-gnu      (Debian arm64: Raspberry Pi 3/4/5, ...)
#   make cross-armhf    armv7-unknown-linux-gnueabihf  (Debian armhf: 32-bit ARMv7, hard float)
#   make cross-i386     i686-unknown-linux-gnu         (Debian i386: 32-bit x86)
#   make cross-amd64    x86_64-unknown-linux-gnu       (the amd64 package, with the same toolchain)
#
# each build, into target/cross/TRIPLE/, the release daemon and libssed (release/ssed,
# libssed.so, libssed.a) with CROSS_FEATURES, and the tiny daemon (tiny/ssed, `cargo tiny`).
# They use Debian's Rust (rustc-web, cargo-web and libstd-rust-web-dev:ARCH: /usr/bin/rustc,
# /usr/bin/cargo), the cross C compiler as linker (.cargo/config.toml) and Debian's LLD (the
# lld-NN that /usr/bin/rust-lld points to), as rustc links on x86_64. The library carries the
# soname libssed.so.ABI (SSE_ABI_VERSION), with that name beside it as a link.
#
#   make deb-arm64      target/deb/ssed_VERSION_arm64.deb, libssed1_..., libssed-dev_...
#   make deb-armhf, make deb-amd64 (and deb-i386): the same, from that cross build (release
#                       daemon and library only: cross-release-ARCH)
#
# See README.md, "Devices", for the packages needed and the tests.

CROSS_CARGO    ?= /usr/bin/cargo
CROSS_RUSTC    ?= /usr/bin/rustc
CROSS_DIR      := $(ROOT)/target/cross
# The cargo features of every cross-built release daemon and library, packages included (the
# default build's): the one place to add a feature to the devices' builds.
CROSS_FEATURES := jwt,history-file,tls,urlpattern,host,sockets,loops
ABI            := $(shell sed -n 's/^\#define SSE_ABI_VERSION //p' $(ROOT)/include/ssed.h)

triple_arm64 := aarch64-unknown-linux-gnu
triple_armhf := armv7-unknown-linux-gnueabihf
triple_i386  := i686-unknown-linux-gnu
triple_amd64 := x86_64-unknown-linux-gnu
CROSS_ARCHES := arm64 armhf i386 amd64

# Debian's rustc links through the cross gcc; -B hands gcc the `ld` of rustc's own gcc-ld
# directory, which is LLD: identical-code folding and linker scripts as on x86_64.
cross_lld = $(shell $(CROSS_RUSTC) --print sysroot)/lib/rustlib/$(shell $(CROSS_RUSTC) -vV | sed -n 's/^host: //p')/bin/gcc-ld
cross_env = RUSTC=$(CROSS_RUSTC) CARGO_TARGET_DIR=$(CROSS_DIR) SSED_SONAME=libssed.so.$(ABI) \
            $(shell echo CARGO_TARGET_$(triple_$1)_RUSTFLAGS | tr a-z- A-Z_)="-C link-arg=-B$(cross_lld)"

.PHONY: $(CROSS_ARCHES:%=cross-%) $(CROSS_ARCHES:%=deb-%)

.PHONY: $(CROSS_ARCHES:%=cross-release-%)

$(CROSS_ARCHES:%=cross-%): cross-%: cross-release-%
	cd $(ROOT) && $(call cross_env,$*) CARGO_BUILD_TARGET=$(triple_$*) $(CROSS_CARGO) tiny
	@ls -l $(CROSS_DIR)/$(triple_$*)/release/ssed $(CROSS_DIR)/$(triple_$*)/tiny/ssed \
	  $(CROSS_DIR)/$(triple_$*)/release/libssed.so $(CROSS_DIR)/$(triple_$*)/release/libssed.a

# The release daemon and libssed alone (what the packages hold).
$(CROSS_ARCHES:%=cross-release-%): cross-release-%:
	@[ -x $(CROSS_RUSTC) ] && [ -x $(CROSS_CARGO) ] || { echo "$(CROSS_RUSTC) or $(CROSS_CARGO) missing: apt-get install rustc-web cargo-web libstd-rust-web-dev:$*"; exit 1; }
	@[ -e $(cross_lld)/ld ] || { echo "$(cross_lld)/ld does not resolve: apt-get install $$(basename $$(readlink /usr/bin/rust-lld))"; exit 1; }
	cd $(ROOT) && $(call cross_env,$*) $(CROSS_CARGO) build --release --target $(triple_$*) \
	  --no-default-features --features $(CROSS_FEATURES)
	ln -sf libssed.so $(CROSS_DIR)/$(triple_$*)/release/libssed.so.$(ABI)

$(CROSS_ARCHES:%=deb-%): deb-%: cross-release-%
	$(ROOT)/packaging/deb/build $* $(CROSS_DIR)/$(triple_$*)/release $(ROOT)/target/deb
