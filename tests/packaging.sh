#!/bin/sh
# Packaging as a user meets it: `make install PREFIX=...` lays out the shared
# library with its soname links, the archive, the header and bitcask.pc; a
# program builds through pkg-config, shared and fully static, and runs;
# `make uninstall` removes exactly what install laid out.
set -eu
work=${1:?usage: tests/packaging.sh WORKDIR}
prefix=$work/prefix
rm -rf "$work"
mkdir -p "$work"
fail() { echo "packaging: FAIL: $*" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
make --no-print-directory install PREFIX="$prefix" >/dev/null

for f in lib/libbitcask.so.$version lib/libbitcask.a include/bitcask.h lib/pkgconfig/bitcask.pc; do
    [ -f "$prefix/$f" ] || fail "missing $f"
done
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
rm -rf "$work"
