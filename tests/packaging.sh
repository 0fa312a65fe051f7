#!/bin/sh
# Packaging as a user meets it: after `make`, `make install PREFIX=...` (with
# no cargo on PATH, as under sudo) copies without building: the stripped shared
# library with its soname links, the archive, the headers, bitcask.pc and the
# CMake package; a program builds through pkg-config, shared and fully static,
# and runs; LIBDIR places the libraries (lib64, Debian multiarch); `make
# uninstall` removes exactly what install laid out.
set -eu
work=${1:?usage: tests/packaging.sh WORKDIR}
rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
prefix=$work/prefix
fail() { echo "packaging: FAIL: $*" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
# As under sudo: no cargo on PATH (and CARGO a command that fails), and no
# CARGO_TARGET_DIR of the user's (here one that does not exist): install
# only copies what `make` left in build/lib.
nocargo_path=$(printf %s "$PATH" | tr ':' '\n' | while read -r d; do [ -x "$d/cargo" ] || printf '%s:' "$d"; done)
PATH=${nocargo_path%:} make --no-print-directory install PREFIX="$prefix" CARGO=false \
    CARGO_TARGET_DIR="$work/no-such-target" >"$work/install.log" 2>&1 \
    || { cat "$work/install.log"; fail "make install needs more than what make built"; }

for f in lib/libbitcask.so.$version lib/libbitcask.a include/bitcask.h include/bitcask.hpp \
         lib/pkgconfig/bitcask.pc lib/cmake/bitcask/bitcaskConfig.cmake lib/cmake/bitcask/bitcaskConfigVersion.cmake; do
    [ -f "$prefix/$f" ] || fail "missing $f"
done
# Stripped, with its debug info left beside the build (linked by name).
if readelf -S "$prefix/lib/libbitcask.so.$version" | grep -q '\.debug_info'; then fail "the installed .so is not stripped"; fi
readelf -S "$prefix/lib/libbitcask.so.$version" | grep -q '\.gnu_debuglink' || fail "the installed .so has no debug link"
echo "packaging: install without cargo ok; .so $(wc -c < "$prefix/lib/libbitcask.so.$version") bytes stripped, .a $(wc -c < "$prefix/lib/libbitcask.a") bytes"
[ "$(readlink "$prefix/lib/libbitcask.so.0")" = "libbitcask.so.$version" ] || fail "libbitcask.so.0 link"
[ "$(readlink "$prefix/lib/libbitcask.so")" = "libbitcask.so.0" ] || fail "libbitcask.so link"
readelf -d "$prefix/lib/libbitcask.so.$version" | grep -q 'SONAME.*\[libbitcask\.so\.0\]' || fail "soname is not libbitcask.so.0"
echo "packaging: layout and soname ok"

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
[ "$(pkg-config --modversion bitcask)" = "$version" ] || fail "pkg-config --modversion"

# Shared: the program records the soname and runs.
cc -std=c11 -Wall -Wextra -Werror c_examples/basic.c -o "$work/app" $(pkg-config --cflags --libs bitcask)
readelf -d "$work/app" | grep -q 'NEEDED.*\[libbitcask\.so\.0\]' || fail "app does not need libbitcask.so.0"
LD_LIBRARY_PATH="$prefix/lib" "$work/app" "$work/db-shared" >/dev/null || fail "shared app failed"
echo "packaging: shared build through pkg-config ok"

# Static: pkg-config --static gives what the archive needs.
cc -static -std=c11 -Wall -Wextra c_examples/basic.c -o "$work/app-static" \
    $(pkg-config --static --cflags --libs bitcask) 2>"$work/static.log" || { cat "$work/static.log"; fail "static link"; }
if readelf -d "$work/app-static" 2>/dev/null | grep -q NEEDED; then fail "static app has dynamic dependencies"; fi
"$work/app-static" "$work/db-static" >/dev/null || fail "static app failed"
echo "packaging: static build through pkg-config --static ok"

make --no-print-directory uninstall PREFIX="$prefix" >/dev/null
left=$(find "$prefix" \( -type f -o -type l \) | wc -l)
[ "$left" = 0 ] || { find "$prefix" \( -type f -o -type l \); fail "uninstall left $left files"; }
echo "packaging: uninstall ok"

# LIBDIR: relative to PREFIX (Debian multiarch here) or absolute (lib64).
multi=$work/multi
make --no-print-directory install PREFIX="$multi" LIBDIR=lib/x86_64-linux-gnu >/dev/null
[ -f "$multi/lib/x86_64-linux-gnu/libbitcask.so.$version" ] || fail "LIBDIR=lib/x86_64-linux-gnu: no library there"
[ -f "$multi/lib/x86_64-linux-gnu/cmake/bitcask/bitcaskConfig.cmake" ] || fail "LIBDIR: no CMake package there"
[ -f "$multi/include/bitcask.h" ] || fail "LIBDIR moved the header"
[ "$(PKG_CONFIG_PATH="$multi/lib/x86_64-linux-gnu/pkgconfig" pkg-config --variable=libdir bitcask)" = "$multi/lib/x86_64-linux-gnu" ] \
    || fail "LIBDIR: bitcask.pc names another libdir"
grep -q '"${CMAKE_CURRENT_LIST_DIR}/../../../../include"' "$multi/lib/x86_64-linux-gnu/cmake/bitcask/bitcaskConfig.cmake" \
    || fail "LIBDIR: the CMake package does not find the headers"
make --no-print-directory uninstall PREFIX="$multi" LIBDIR=lib/x86_64-linux-gnu >/dev/null
make --no-print-directory install PREFIX="$multi" LIBDIR="$multi/lib64" >/dev/null
[ -f "$multi/lib64/libbitcask.a" ] || fail "LIBDIR=\$PREFIX/lib64: no archive there"
make --no-print-directory uninstall PREFIX="$multi" LIBDIR="$multi/lib64" >/dev/null
left=$(find "$multi" \( -type f -o -type l \) | wc -l)
[ "$left" = 0 ] || { find "$multi" \( -type f -o -type l \); fail "uninstall with LIBDIR left $left files"; }
echo "packaging: LIBDIR (multiarch, lib64) ok"
rm -rf "$work"
