# libbitcask: build, install, test.
#
#   make                         build (cargo, as yourself) and prepare the libraries install copies
#   sudo make install [PREFIX=/usr/local] [LIBDIR=lib] [DESTDIR=...]   copies only: no cargo, no rebuild
#   sudo make uninstall [PREFIX=...] [LIBDIR=...]
#   make example                 build, install under build/stage, build and run c_examples/ (no test tools)
#   make test                    every test: fmt, clippy, Rust tests, packaging and ABI, C tests (plain,
#                                ASan+UBSan, valgrind), C++ tests (+ valgrind), the CMake consumer,
#                                the Python package, the examples
#   make header                  regenerate include/bitcask.h from src/ffi (cbindgen)
#   make bench [ARGS="--keys 100000 --value-size 100"]   the benchmark (release; prints tables)
#   make bench-micro [ARGS="reopen"]   engine micro-benchmarks (iteration, batches, point ops, reopen)
#   make bench-keydir [ARGS="memory"]  the index types on their own
#   make pybench                 the Python package beside py-lmdb and plyvel (not part of test)
#
# LIBDIR is relative to PREFIX (lib, lib64, lib/x86_64-linux-gnu) or absolute.

PREFIX     ?= /usr/local
LIBDIR     ?= lib
INCLUDEDIR ?= include
DESTDIR    ?=
CARGO      ?= cargo
CC         ?= cc
CXX        ?= c++
PYTHON     ?= python3

prefix     := $(abspath $(PREFIX))
under_prefix = $(abspath $(if $(filter /%,$(1)),$(1),$(prefix)/$(1)))
libdir     := $(call under_prefix,$(LIBDIR))
includedir := $(call under_prefix,$(INCLUDEDIR))
cmakedir   := $(libdir)/cmake/bitcask
bindir     := $(call under_prefix,bin)
man1dir    := $(call under_prefix,share/man/man1)
VERSION    := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
# The C-ABI version: the soname is libbitcask.so.$(ABI_MAJOR) (see build.rs and
# "What changes the soname" in README.md).
ABI_MAJOR  := 0
SO_REAL    := libbitcask.so.$(VERSION)
SO_NAME    := libbitcask.so.$(ABI_MAJOR)

TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
RELEASE    := $(TARGET_DIR)/release
BUILD      := $(CURDIR)/build
# What install copies: the libraries as cargo built them, stripped (see dist).
DIST       := $(BUILD)/lib
STAGE      := $(BUILD)/stage
STAGE_PC   := PKG_CONFIG_PATH=$(STAGE)/lib/pkgconfig pkg-config
C_STRICT   := -std=c11 -Wall -Wextra -Werror -pedantic -g -O1
CXX_STRICT := -std=c++17 -Wall -Wextra -Werror -pedantic -g -O1
# --fair-sched=yes: valgrind runs one thread at a time, and its default
# scheduler lock is not fair, so a thread can wait for minutes while others
# take turns (test_maint's merge test once took 13 minutes instead of 12 s).
VALGRIND   := valgrind --fair-sched=yes --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,possible --quiet
C_TESTS    := test_core_basics test_core_open test_core_rw test_core_data test_threads test_iter test_batch test_maint test_index test_read_only test_recovery test_snapshot
# The C tests run three ways: plain, under AddressSanitizer and
# UndefinedBehaviorSanitizer (stack over-reads, real thread interleavings;
# any report fails the run), and under valgrind. The sanitizer runtime comes
# with gcc; the test program is built with it, so it loads first.
SANITIZE   := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
SAN_ENV    := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
EXAMPLES   := basic iterate batch threads
PYENV      := $(BUILD)/pyenv

.PHONY: all build dist install uninstall stage example test deps lint rust-test packaging-test \
        c-test cxx-test cmake-test python-test cli cli-test header bench bench-micro bench-keydir pybench clean

all: build

build:
	$(CARGO) build --release --locked
	@$(MAKE) --no-print-directory dist

# The installed libraries, made from cargo's output without cargo:
# - libbitcask.so stripped, its debug info in $(SO_REAL).debug beside it
#   (linked by .gnu_debuglink; not installed);
# - libbitcask.a without debug info and without the LLVM bitcode that rustc
#   embeds in its objects (.llvmbc/.llvmcmd): binutils' LLVM plugin cannot
#   read bitcode from a newer LLVM, so nm listed nothing and clang -flto failed.
dist: $(DIST)/$(SO_REAL) $(DIST)/libbitcask.a $(BUILD)/bin/bitcask

# Prerequisites only where cargo's output exists, so that an install whose
# environment differs (sudo drops CARGO_TARGET_DIR) still copies build/lib.
NOT_BUILT  = { echo "$(RELEASE)/$(1) is missing: run 'make' first (as yourself: it builds with cargo); install only copies" >&2; exit 1; }

$(DIST)/$(SO_REAL): $(wildcard $(RELEASE)/libbitcask.so)
	@test -n "$<" || $(call NOT_BUILT,libbitcask.so)
	@mkdir -p $(DIST)
	objcopy --only-keep-debug $< $@.debug
	objcopy --strip-unneeded --add-gnu-debuglink=$@.debug $< $@

$(DIST)/libbitcask.a: $(wildcard $(RELEASE)/libbitcask.a)
	@test -n "$<" || $(call NOT_BUILT,libbitcask.a)
	@mkdir -p $(DIST)
	objcopy --strip-debug --remove-section=.llvmbc --remove-section=.llvmcmd \
	    --enable-deterministic-archives $< $@

# The bitcask tool (cli/), stripped: what install copies into PREFIX/bin.
$(BUILD)/bin/bitcask: $(wildcard $(RELEASE)/bitcask)
	@test -n "$<" || $(call NOT_BUILT,bitcask)
	@mkdir -p $(BUILD)/bin
	objcopy --strip-unneeded $< $@

install: dist
	install -d $(DESTDIR)$(libdir)/pkgconfig $(DESTDIR)$(includedir) $(DESTDIR)$(cmakedir)
	install -m 0755 $(DIST)/$(SO_REAL) $(DESTDIR)$(libdir)/$(SO_REAL)
	ln -sfn $(SO_REAL) $(DESTDIR)$(libdir)/$(SO_NAME)
	ln -sfn $(SO_NAME) $(DESTDIR)$(libdir)/libbitcask.so
	install -m 0644 $(DIST)/libbitcask.a $(DESTDIR)$(libdir)/libbitcask.a
	install -m 0644 include/bitcask.h include/bitcask.hpp $(DESTDIR)$(includedir)/
	sed -e 's|@PREFIX@|$(prefix)|' -e 's|@LIBDIR@|$(libdir)|' \
	    -e 's|@INCLUDEDIR@|$(includedir)|' -e 's|@VERSION@|$(VERSION)|' \
	    bitcask.pc.in > $(DESTDIR)$(libdir)/pkgconfig/bitcask.pc
	chmod 0644 $(DESTDIR)$(libdir)/pkgconfig/bitcask.pc
	# The CMake package finds the rest relative to its own directory (relocatable).
	sed -e 's|@INCLUDEDIR_FROM_CMAKEDIR@|'"$$(realpath -m --relative-to=$(cmakedir) $(includedir))"'|' \
	    -e 's|@SO_REAL@|$(SO_REAL)|' -e 's|@SO_NAME@|$(SO_NAME)|' \
	    cmake/bitcaskConfig.cmake.in > $(DESTDIR)$(cmakedir)/bitcaskConfig.cmake
	sed -e 's|@VERSION@|$(VERSION)|' -e "s|@SIZEOF_VOID_P@|$$(( $$(getconf LONG_BIT) / 8 ))|" \
	    cmake/bitcaskConfigVersion.cmake.in > $(DESTDIR)$(cmakedir)/bitcaskConfigVersion.cmake
	chmod 0644 $(DESTDIR)$(cmakedir)/bitcaskConfig.cmake $(DESTDIR)$(cmakedir)/bitcaskConfigVersion.cmake
	install -d $(DESTDIR)$(bindir) $(DESTDIR)$(man1dir)
	install -m 0755 $(BUILD)/bin/bitcask $(DESTDIR)$(bindir)/bitcask
	install -m 0644 cli/bitcask.1 $(DESTDIR)$(man1dir)/bitcask.1

uninstall:
	rm -f $(DESTDIR)$(libdir)/$(SO_REAL) $(DESTDIR)$(libdir)/$(SO_NAME) \
	      $(DESTDIR)$(libdir)/libbitcask.so $(DESTDIR)$(libdir)/libbitcask.a \
	      $(DESTDIR)$(includedir)/bitcask.h $(DESTDIR)$(includedir)/bitcask.hpp \
	      $(DESTDIR)$(libdir)/pkgconfig/bitcask.pc \
	      $(DESTDIR)$(cmakedir)/bitcaskConfig.cmake $(DESTDIR)$(cmakedir)/bitcaskConfigVersion.cmake
	rmdir $(DESTDIR)$(cmakedir) 2>/dev/null || true
	rm -f $(DESTDIR)$(bindir)/bitcask $(DESTDIR)$(man1dir)/bitcask.1

# An install under build/stage, which the examples and the C, C++, CMake and
# Python tests build against.
stage: build
	@$(MAKE) --no-print-directory install PREFIX=$(STAGE) LIBDIR=lib INCLUDEDIR=include DESTDIR= >/dev/null

# Needs a C compiler and cargo only: pkg-config is used when it is there.
example: stage
	@for e in $(EXAMPLES); do \
	    flags=$$($(STAGE_PC) --cflags --libs bitcask 2>/dev/null || echo "-I$(STAGE)/include -L$(STAGE)/lib -lbitcask"); \
	    $(CC) $(C_STRICT) c_examples/$$e.c -o $(BUILD)/$$e $$flags -pthread || exit 1; \
	    rm -rf $(BUILD)/example-db $(BUILD)/example-db-backup; \
	    echo "== c_examples/$$e.c"; \
	    LD_LIBRARY_PATH=$(STAGE)/lib $(BUILD)/$$e $(BUILD)/example-db || exit 1; \
	done
	rm -rf $(BUILD)/example-db $(BUILD)/example-db-backup

test: deps lint rust-test packaging-test c-test cxx-test cmake-test python-test cli-test example
	@echo "make test: all passed"

# Installs what the tests need on a fresh machine (Debian packages).
deps:
	@missing=""; \
	command -v valgrind >/dev/null || missing="$$missing valgrind"; \
	command -v pkg-config >/dev/null || missing="$$missing pkg-config"; \
	command -v c++ >/dev/null || missing="$$missing g++"; \
	command -v readelf >/dev/null || missing="$$missing binutils"; \
	command -v mkfs.ext4 >/dev/null || missing="$$missing e2fsprogs"; \
	command -v clang >/dev/null || missing="$$missing clang"; \
	command -v cmake >/dev/null || missing="$$missing cmake"; \
	PATH="$$PATH:/sbin:/usr/sbin"; \
	command -v mkfs.ext4 >/dev/null || missing="$$missing e2fsprogs"; \
	command -v losetup >/dev/null || missing="$$missing mount"; \
	$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
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

# Install (without cargo), soname, pkg-config (shared and --static), the
# exported symbols against abi/libbitcask.symbols, the archive under nm and
# gcc/clang -flto, struct tags, uninstall, as a user meets them.
packaging-test: build
	sh tests/packaging.sh $(BUILD)/pkgtest
	sh tests/abi.sh $(BUILD)/abitest

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

# The bitcask tool (cli/); `build` builds it too, as a default member of the workspace.
cli:
	$(CARGO) build --release --locked -p bitcask-cli

# The tool as installed: make install puts it and its man page under PREFIX,
# it runs from there, and make uninstall removes both. (Its tests run in rust-test.)
cli-test: build
	rm -rf $(BUILD)/clitest
	$(MAKE) --no-print-directory install PREFIX=$(BUILD)/clitest DESTDIR=
	$(BUILD)/clitest/bin/bitcask --help >/dev/null
	$(BUILD)/clitest/bin/bitcask put $(BUILD)/clitest/db k v
	test "$$($(BUILD)/clitest/bin/bitcask get $(BUILD)/clitest/db k)" = v
	test -f $(BUILD)/clitest/share/man/man1/bitcask.1
	$(MAKE) --no-print-directory uninstall PREFIX=$(BUILD)/clitest DESTDIR=
	test ! -e $(BUILD)/clitest/bin/bitcask && test ! -e $(BUILD)/clitest/share/man/man1/bitcask.1
	rm -rf $(BUILD)/clitest

# The C++17 wrapper (include/bitcask.hpp), and the README's C++ snippet.
cxx-test: stage
	@mkdir -p $(BUILD)/cxx
	sh tests/readme_snippet.sh cxx $(BUILD)/cxx/readme.cpp
	@for t in tests/cxx/test_wrapper.cpp $(BUILD)/cxx/readme.cpp; do \
	    b=$(BUILD)/cxx/$$(basename $$t .cpp); \
	    echo "== $$t"; \
	    $(CXX) $(CXX_STRICT) $$t -o $$b $$($(STAGE_PC) --cflags --libs bitcask) -pthread || exit 1; \
	    rm -rf $(BUILD)/cxx/db; \
	    LD_LIBRARY_PATH=$(STAGE)/lib $(VALGRIND) $$b $(BUILD)/cxx/db || exit 1; \
	done

# A CMake project (the README's snippet) configured and built against the
# staged install with find_package, shared and static, and run.
cmake-test: stage
	sh tests/cmake.sh $(STAGE) $(BUILD)/cmaketest

# The Python package installed with pip into a fresh venv, then its pytest
# tests. maturin builds the library as a cdylib alone, with other flags than
# `make` (cargo then applies lto = "thin", and maturin strips it): in its own
# target directory, kept between runs, so that neither build overwrites the
# other's target/release/libbitcask.so and both stay incremental. (A plain
# `pip install ./python` gets the same from python/.cargo/config.toml; the
# variable also overrides a CARGO_TARGET_DIR set in the environment.)
PY_TARGET  := $(BUILD)/python-target
python-test: stage
	rm -rf $(PYENV)
	$(PYTHON) -m venv $(PYENV)
	$(PYENV)/bin/pip install -q --disable-pip-version-check pytest
	CARGO_TARGET_DIR=$(PY_TARGET) $(PYENV)/bin/pip install -q --disable-pip-version-check ./python
	cd $(BUILD) && BITCASK_STAGE=$(STAGE) BITCASK_README=$(CURDIR)/README.md \
	    $(PYENV)/bin/python -m pytest -q -p no:cacheprovider $(CURDIR)/python/tests

# The Python package beside py-lmdb and plyvel (those that install); not part of test.
pybench:
	rm -rf $(BUILD)/pybench-env
	$(PYTHON) -m venv $(BUILD)/pybench-env
	CARGO_TARGET_DIR=$(PY_TARGET) $(BUILD)/pybench-env/bin/pip install -q --disable-pip-version-check ./python
	-$(BUILD)/pybench-env/bin/pip install -q --disable-pip-version-check lmdb
	-$(BUILD)/pybench-env/bin/pip install -q --disable-pip-version-check plyvel
	$(BUILD)/pybench-env/bin/python python/benchmarks/bench.py $(ARGS)

header:
	BITCASK_UPDATE_HEADER=1 $(CARGO) test --locked --test header committed_header_is_fresh

# The project's own benchmark (benches/bitcask_bench/); not part of test.
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
