#!/bin/sh
# A CMake project as a user writes it (the README's snippet, tagged
# <!-- test: cmake -->) finds an installed libbitcask with find_package,
# builds c_examples/basic.c against bitcask::bitcask (shared) and
# bitcask::bitcask_static, and runs both; a request for a version the
# install does not satisfy is refused.
set -eu
prefix=${1:?usage: tests/cmake.sh PREFIX WORKDIR}
work=${2:?usage: tests/cmake.sh PREFIX WORKDIR}
rm -rf "$work"
mkdir -p "$work/app"
work=$(cd "$work" && pwd)
prefix=$(cd "$prefix" && pwd)
fail() { echo "cmake: FAIL: $*" >&2; exit 1; }
command -v cmake >/dev/null || fail "cmake is not installed (make deps installs it)"

sh tests/readme_snippet.sh cmake "$work/app/CMakeLists.txt"
cp c_examples/basic.c "$work/app/app.c"
cmake -S "$work/app" -B "$work/build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
    >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; fail "configure"; }
cmake --build "$work/build" >"$work/build.log" 2>&1 || { cat "$work/build.log"; fail "build"; }

# The shared one needs libbitcask.so.0 (found through the build tree's RPATH);
# the static one contains the library.
readelf -d "$work/build/app" | grep -q 'NEEDED.*\[libbitcask\.so\.0\]' || fail "app does not need libbitcask.so.0"
if readelf -d "$work/build/app_static" | grep -q 'NEEDED.*libbitcask'; then fail "app_static needs libbitcask.so"; fi
"$work/build/app" "$work/db-shared" >/dev/null || fail "app (bitcask::bitcask) failed"
"$work/build/app_static" "$work/db-static" >/dev/null || fail "app_static (bitcask::bitcask_static) failed"
echo "cmake: find_package(bitcask) and both imported targets build and run"

# A version this install does not satisfy (0.x: another minor) is refused.
mkdir -p "$work/newer"
cat > "$work/newer/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.14)
project(newer C)
find_package(bitcask 0.99 REQUIRED)
CMAKE
if cmake -S "$work/newer" -B "$work/newer-build" -DCMAKE_PREFIX_PATH="$prefix" >"$work/newer.log" 2>&1; then
    fail "find_package(bitcask 0.99) accepted version $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
fi
grep -q 'compatible with requested version "0.99"' "$work/newer.log" || { cat "$work/newer.log"; fail "refused for another reason"; }
echo "cmake: find_package(bitcask 0.99) refused"
rm -rf "$work"
