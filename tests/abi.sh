#!/bin/sh
# The library's ABI as toolchains meet it, on an install made by `make install`:
# - libbitcask.so exports exactly the symbols listed in abi/libbitcask.symbols,
#   and the header declares exactly those functions: adding, removing or
#   renaming a function fails here until the list is updated with it (a
#   removal or rename also needs a new soname: see README.md);
# - nm reads libbitcask.a and finds every listed function defined in it, and
#   no object in it carries LLVM bitcode;
# - a C program links against libbitcask.a with gcc -flto and clang -flto
#   (the system's default linker) and runs;
# - every struct has its tag: `struct bitcask_stats` in C, forward
#   declarations of the structs in C++.
set -eu
work=${1:?usage: tests/abi.sh WORKDIR}
rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
prefix=$work/prefix
fail() { echo "abi: FAIL: $*" >&2; exit 1; }

make --no-print-directory install PREFIX="$prefix" >/dev/null
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
so=$prefix/lib/libbitcask.so.$version
archive=$prefix/lib/libbitcask.a

# Exported symbols: the dynamic symbol table's defined entries.
nm -D --defined-only "$so" | awk '$2 ~ /^[A-Za-z]$/ { print $3 }' | LC_ALL=C sort > "$work/exported"
if ! LC_ALL=C sort abi/libbitcask.symbols | diff -u - "$work/exported" >"$work/exported.diff"; then
    cat "$work/exported.diff" >&2
    fail "libbitcask.so exports other symbols than abi/libbitcask.symbols lists (- listed, + exported)"
fi
# The header's prototypes: the name before the first '(' on a line that ends in ');'.
grep -E '^[a-z].*\);$' include/bitcask.h | grep -v '^typedef' | sed 's/(.*//; s/.*[ *]//' \
    | LC_ALL=C sort > "$work/declared"
if ! LC_ALL=C sort abi/libbitcask.symbols | diff -u - "$work/declared" >"$work/declared.diff"; then
    cat "$work/declared.diff" >&2
    fail "include/bitcask.h declares other functions than abi/libbitcask.symbols lists (- listed, + declared)"
fi
echo "abi: libbitcask.so exports exactly the $(wc -l < "$work/exported") functions of abi/libbitcask.symbols and bitcask.h"

# The archive: readable by nm (no LTO plugin complaint), every function defined.
nm "$archive" >"$work/nm.out" 2>"$work/nm.err" || { cat "$work/nm.err"; fail "nm cannot read libbitcask.a"; }
# (Objects that define nothing, such as cfg_if's, draw a harmless "no symbols".)
if grep -v ': no symbols$' "$work/nm.err" | grep -q .; then
    cat "$work/nm.err" >&2
    fail "nm complained about libbitcask.a"
fi
awk '$2 == "T" { print $3 }' "$work/nm.out" | LC_ALL=C sort -u > "$work/archive-defined"
missing=$(LC_ALL=C comm -23 "$work/exported" "$work/archive-defined")
[ -z "$missing" ] || fail "nm finds these functions undefined in libbitcask.a: $missing"
if objdump -h "$archive" | grep -q '\.llvmbc\|\.llvmcmd'; then fail "libbitcask.a still carries LLVM bitcode"; fi
echo "abi: nm lists every function in libbitcask.a; no embedded bitcode"

# LTO builds against the archive, with each compiler's default linker.
private=$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --static --libs-only-l bitcask | sed 's/-lbitcask//')
for compiler in gcc clang; do
    command -v "$compiler" >/dev/null || fail "$compiler is not installed (make deps installs it)"
    "$compiler" -flto -O2 -std=c11 -Wall -Wextra -Werror -I"$prefix/include" c_examples/basic.c \
        "$archive" $private -o "$work/app-$compiler-lto" 2>"$work/$compiler.log" \
        || { cat "$work/$compiler.log"; fail "$compiler -flto cannot link libbitcask.a"; }
    if readelf -d "$work/app-$compiler-lto" | grep -q 'NEEDED.*libbitcask'; then
        fail "the $compiler -flto program needs libbitcask.so instead of containing the archive"
    fi
    "$work/app-$compiler-lto" "$work/db-$compiler" >/dev/null || fail "the $compiler -flto program failed"
done
echo "abi: gcc -flto and clang -flto link libbitcask.a and run"

# Struct tags, as the contract writes them.
cat > "$work/tags.c" <<'EOF'
#include <bitcask.h>
struct bitcask_db;                    /* the tags of the opaque handles */
int tags(struct bitcask_db *db);
int tags(struct bitcask_db *db)
{
    struct bitcask_stats st;          /* the tag of the stats struct */
    bitcask_stats *typed = &st;       /* and its typedef, the same type */
    return bitcask_get_stats(db, typed) == BITCASK_OK ? (int)st.key_count : -1;
}
EOF
cc -std=c11 -Wall -Wextra -Werror -pedantic -I"$prefix/include" -c "$work/tags.c" -o "$work/tags-c.o" \
    || fail "struct tags do not compile as C11"
cat > "$work/tags.cpp" <<'EOF'
struct bitcask_stats;                 /* forward declarations before the header */
struct bitcask_db;
struct bitcask_iter;
#include <bitcask.h>
int tags(bitcask_db *db);
int tags(bitcask_db *db)
{
    struct bitcask_stats st = {};
    return bitcask_get_stats(db, &st) == BITCASK_OK ? static_cast<int>(st.key_count) : -1;
}
EOF
c++ -std=c++11 -Wall -Wextra -Werror -pedantic -I"$prefix/include" -c "$work/tags.cpp" -o "$work/tags-cpp.o" \
    || fail "struct tags do not compile as C++11"
echo "abi: struct tags compile in C11 and C++11"
rm -rf "$work"
