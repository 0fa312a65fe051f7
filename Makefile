# libbitcask: build, install, test.
#
#   make example                 build everything, install it under build/stage, run the C example
#   make test                    every test: fmt, clippy, Rust tests, packaging, C tests (plain, ASan+UBSan, valgrind)
#   make install PREFIX=/usr/local [DESTDIR=...]
#   make uninstall PREFIX=/usr/local
#   make header                  regenerate include/bitcask.h from src/ffi (cbindgen)
#   make bench [ARGS="--keys 100000 --value-size 100"]   the benchmark (release; prints tables)
#   make bench-micro [ARGS="reopen"]   engine micro-benchmarks (iteration, batches, point ops, reopen)
#   make bench-keydir [ARGS="memory"]  the index types on their own

PREFIX     ?= /usr/local
DESTDIR    ?=
CARGO      ?= cargo
CC         ?= cc

prefix     := $(abspath $(PREFIX))
libdir     := $(prefix)/lib
includedir := $(prefix)/include
VERSION    := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
# The C-ABI version: the soname is libbitcask.so.$(ABI_MAJOR) (see build.rs).
ABI_MAJOR  := 0
SO_REAL    := libbitcask.so.$(VERSION)
SO_NAME    := libbitcask.so.$(ABI_MAJOR)

BUILD      := $(CURDIR)/build
STAGE      := $(BUILD)/stage
STAGE_PC   := PKG_CONFIG_PATH=$(STAGE)/lib/pkgconfig pkg-config
C_STRICT   := -std=c11 -Wall -Wextra -Werror -pedantic -g -O1
VALGRIND   := valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,possible --quiet
C_TESTS    := test_core_basics test_core_open test_core_rw test_core_data test_threads test_iter test_batch test_maint test_index
# The C tests run three ways: plain, under AddressSanitizer and
# UndefinedBehaviorSanitizer (stack over-reads, real thread interleavings;
# any report fails the run), and under valgrind. The sanitizer runtime comes
# with gcc; the test program is built with it, so it loads first.
SANITIZE   := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
SAN_ENV    := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

.PHONY: all build install uninstall stage example test deps lint rust-test packaging-test c-test header bench bench-micro bench-keydir clean

all: build

build:
	$(CARGO) build --release --locked

install: build
	install -d $(DESTDIR)$(libdir)/pkgconfig $(DESTDIR)$(includedir)
	install -m 0755 target/release/libbitcask.so $(DESTDIR)$(libdir)/$(SO_REAL)
	ln -sfn $(SO_REAL) $(DESTDIR)$(libdir)/$(SO_NAME)
	ln -sfn $(SO_NAME) $(DESTDIR)$(libdir)/libbitcask.so
	install -m 0644 target/release/libbitcask.a $(DESTDIR)$(libdir)/libbitcask.a
	install -m 0644 include/bitcask.h $(DESTDIR)$(includedir)/bitcask.h
	sed -e 's|@PREFIX@|$(prefix)|' -e 's|@LIBDIR@|$(libdir)|' \
	    -e 's|@INCLUDEDIR@|$(includedir)|' -e 's|@VERSION@|$(VERSION)|' \
	    bitcask.pc.in > $(DESTDIR)$(libdir)/pkgconfig/bitcask.pc
	chmod 0644 $(DESTDIR)$(libdir)/pkgconfig/bitcask.pc

uninstall:
	rm -f $(DESTDIR)$(libdir)/$(SO_REAL) $(DESTDIR)$(libdir)/$(SO_NAME) \
	      $(DESTDIR)$(libdir)/libbitcask.so $(DESTDIR)$(libdir)/libbitcask.a \
	      $(DESTDIR)$(includedir)/bitcask.h $(DESTDIR)$(libdir)/pkgconfig/bitcask.pc

# An install under build/stage, which the example and the C tests build against.
stage:
	$(MAKE) --no-print-directory install PREFIX=$(STAGE) DESTDIR=

example: deps stage
	$(CC) $(C_STRICT) c_examples/basic.c -o $(BUILD)/basic $$($(STAGE_PC) --cflags --libs bitcask)
	rm -rf $(BUILD)/example-db $(BUILD)/example-db-backup
	LD_LIBRARY_PATH=$(STAGE)/lib $(BUILD)/basic $(BUILD)/example-db

test: deps lint rust-test packaging-test c-test example
	@echo "make test: all passed"

# Installs what the tests need on a fresh machine (Debian packages).
deps:
	@missing=""; \
	command -v valgrind >/dev/null || missing="$$missing valgrind"; \
	command -v pkg-config >/dev/null || missing="$$missing pkg-config"; \
	command -v c++ >/dev/null || missing="$$missing g++"; \
	command -v readelf >/dev/null || missing="$$missing binutils"; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    $$sudo apt-get update -q && $$sudo apt-get install -y -q $$missing; \
	fi
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy
	@$(CARGO) fmt --version >/dev/null 2>&1 || rustup component add rustfmt

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(CARGO) clippy --locked --all-targets --features failpoints,bench-internals -- -D warnings

# With the test points of src/failpoint.rs compiled in (tests only), and
# without BITCASK_UPDATE_HEADER, which would rewrite the header under test.
rust-test:
	env -u BITCASK_UPDATE_HEADER $(CARGO) test --locked --features failpoints

# Install, soname, pkg-config (shared and --static) and uninstall, as a user meets them.
packaging-test: build
	sh tests/packaging.sh $(BUILD)/pkgtest

c-test: stage
	@for t in $(C_TESTS); do \
	    echo "== $$t"; \
	    $(CC) $(C_STRICT) tests/c/$$t.c -o $(BUILD)/$$t $$($(STAGE_PC) --cflags --libs bitcask) -pthread || exit 1; \
	    $(CC) $(C_STRICT) $(SANITIZE) tests/c/$$t.c -o $(BUILD)/$$t-san $$($(STAGE_PC) --cflags --libs bitcask) -pthread || exit 1; \
	    LD_LIBRARY_PATH=$(STAGE)/lib $(BUILD)/$$t || exit 1; \
	    echo "== $$t under AddressSanitizer and UndefinedBehaviorSanitizer"; \
	    LD_LIBRARY_PATH=$(STAGE)/lib $(SAN_ENV) $(BUILD)/$$t-san || exit 1; \
	    echo "== $$t under valgrind"; \
	    LD_LIBRARY_PATH=$(STAGE)/lib $(VALGRIND) $(BUILD)/$$t || exit 1; \
	done

header:
	BITCASK_UPDATE_HEADER=1 $(CARGO) test --locked --test header committed_header_is_fresh

# The project's own benchmark (benches/bitcask_bench.rs); not part of test.
# ARGS are passed to it: --keys N, --value-size B[,B...], --sync-keys N,
# --sync-threads T, --dir DIR (--help lists them).
bench:
	$(CARGO) bench --locked --bench bitcask_bench -- $(ARGS)

# Micro-benchmarks (benches/micro.rs, benches/keydir.rs); ARGS filters by name.
bench-micro:
	$(CARGO) bench --locked --bench micro -- $(ARGS)

bench-keydir:
	$(CARGO) bench --locked --features bench-internals --bench keydir -- $(ARGS)

clean:
	$(CARGO) clean
	rm -rf $(BUILD)
