#!/usr/bin/env bash
# The installed SDK works for a project outside the tree:
#  - `cmake --install BUILD --prefix P` puts libdrover.so, libdrover.a,
#    drover.h, drover.pc and the CMake package under P, and nothing
#    anywhere else; with DESTDIR, under DESTDIR/P, drover.pc still naming P;
#  - producer.c builds against P with a plain Makefile (pkg-config, shared
#    and --static) and with a CMake project (find_package(drover), shared
#    and static targets);
#  - each of those four programs loads the installed libdrover (or none, for
#    the static ones), connects with CURVE keys to a real droverd, submits
#    jobs to a drover-worker running the example plugin's `upper` handler,
#    and gets every result right;
#  - the CMake package still works after the prefix is moved.
. "$(dirname "$0")/../integration/lib.sh"
: "${DROVER_BUILD_DIR:?DROVER_BUILD_DIR must name the build tree to install}"
: "${CMAKE_COMMAND:=cmake}" "${CC:=cc}" "${CONSUMER_FLAGS:=}"
[ -n "$DROVER_PLUGIN" ] || fail "DROVER_PLUGIN must name the example plugin"
HERE=$(cd "$(dirname "$0")" && pwd)
SOURCE_DIR=$(cd "$HERE/../.." && pwd)
unset DESTDIR LD_LIBRARY_PATH PKG_CONFIG_PATH CMAKE_PREFIX_PATH CFLAGS LDFLAGS
PREFIX="$T/prefix"
JOBS=40

# --- 1. install ------------------------------------------------------------
"$CMAKE_COMMAND" --install "$DROVER_BUILD_DIR" --prefix "$PREFIX" \
    ${DROVER_BUILD_CONFIG:+--config "$DROVER_BUILD_CONFIG"} >"$T/install.log" 2>&1 \
    || fail "cmake --install failed"
# Every file it wrote ("Installing" or "Up-to-date" in its log) is under P
sed -nE 's/^-- (Installing|Up-to-date): //p' "$T/install.log" > "$T/installed"
[ -s "$T/installed" ] || fail "cmake --install listed no files"
outside=$(grep -v "^$PREFIX/" "$T/installed" || true)
[ -z "$outside" ] || fail "installed outside the prefix: $outside"

pc=$(find "$PREFIX" -name drover.pc)
[ "$(echo "$pc" | wc -l)" -eq 1 ] && [ -n "$pc" ] || fail "expected one drover.pc, found '$pc'"
LIBDIR=$(dirname "$(dirname "$pc")")
for f in "$PREFIX/include/drover.h" "$LIBDIR/libdrover.a" "$LIBDIR/libdrover.so" \
         "$LIBDIR/cmake/drover/droverConfig.cmake" \
         "$LIBDIR/cmake/drover/droverConfigVersion.cmake" \
         "$LIBDIR/cmake/drover/droverTargets.cmake"; do
    [ -e "$f" ] || fail "not installed: ${f#$PREFIX/}"
done
cmp -s "$PREFIX/include/drover.h" "$SOURCE_DIR/sdk/include/drover.h" \
    || fail "installed drover.h differs from sdk/include/drover.h"
# Nothing installed may point back into the build or source tree
leaks=$(grep -rlF -e "$DROVER_BUILD_DIR" -e "$SOURCE_DIR" "$pc" "$LIBDIR/cmake/drover" || true)
[ -z "$leaks" ] || fail "installed files name the build or source tree: $leaks"
if readelf -d "$LIBDIR/libdrover.so" | grep -E 'RPATH|RUNPATH' | grep -qF "$DROVER_BUILD_DIR"; then
    fail "installed libdrover.so keeps a build-tree RUNPATH"
fi

# Staged the way packagers do it: files under DESTDIR, drover.pc naming
# the final prefix
DESTDIR="$T/stage" "$CMAKE_COMMAND" --install "$DROVER_BUILD_DIR" --prefix /opt/drover \
    ${DROVER_BUILD_CONFIG:+--config "$DROVER_BUILD_CONFIG"} >"$T/stage.log" 2>&1 \
    || fail "cmake --install with DESTDIR failed"
staged=$(sed -nE 's/^-- (Installing|Up-to-date): //p' "$T/stage.log")
[ -n "$staged" ] || fail "cmake --install with DESTDIR listed no files"
outside=$(echo "$staged" | grep -v "^$T/stage/opt/drover/" || true)
[ -z "$outside" ] || fail "DESTDIR install went outside the stage: $outside"
expect_eq "$(grep '^prefix=' "$T/stage/opt/drover/${pc#$PREFIX/}")" "prefix=/opt/drover" \
    "staged drover.pc prefix"

export PKG_CONFIG_PATH="$LIBDIR/pkgconfig"
expect_eq "$(pkg-config --variable=prefix drover)" "$PREFIX" "drover.pc prefix"
expect_eq "$(pkg-config --variable=libdir drover)" "$LIBDIR" "drover.pc libdir"
header_version=$(sed -nE 's/^#define DROVER_VERSION_(MAJOR|MINOR|PATCH) ([0-9]+).*/\2/p' \
                 "$PREFIX/include/drover.h" | paste -sd.)
expect_eq "$(pkg-config --modversion drover)" "$header_version" "drover.pc version"
pkg-config --static --libs drover | grep -qw -e -lzmq || fail "pkg-config --static lacks -lzmq"

# --- 2. build a producer outside the tree, twice ------------------------
mkdir -p "$T/src/cmake"
cp "$HERE/producer.c" "$HERE/Makefile" "$T/src/"
cp "$HERE/cmake/CMakeLists.txt" "$T/src/cmake/"

make -C "$T/src" CC="$CC" CFLAGS="-O2 -g -Wall -Wextra -Werror $CONSUMER_FLAGS" \
    LDFLAGS="$CONSUMER_FLAGS" >"$T/make.log" 2>&1 || fail "make with pkg-config failed"

"$CMAKE_COMMAND" -S "$T/src/cmake" -B "$T/cmake-build" -DCMAKE_C_COMPILER="$CC" \
    -DCMAKE_C_FLAGS="$CONSUMER_FLAGS" -DCMAKE_EXE_LINKER_FLAGS="$CONSUMER_FLAGS" \
    -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
    >"$T/cmake.log" 2>&1 || fail "cmake configure with find_package(drover) failed"
grep -qF -- "-- libdrover: $LIBDIR/libdrover.so" "$T/cmake.log" \
    || fail "find_package found another libdrover: $(grep 'libdrover:' "$T/cmake.log")"
grep -qF "(package in $LIBDIR/cmake/drover)" "$T/cmake.log" \
    || fail "find_package used another package: $(grep 'libdrover:' "$T/cmake.log")"
"$CMAKE_COMMAND" --build "$T/cmake-build" -j2 >>"$T/cmake.log" 2>&1 \
    || fail "cmake build with find_package(drover) failed"

# --- which libdrover each program loads -----------------------------------
# The pkg-config build has no RUNPATH: it finds the installed library
# through LD_LIBRARY_PATH, and only through it.
make_bin="$T/src/producer"
readelf -d "$make_bin" | grep -qE 'RPATH|RUNPATH' && fail "make build has a RUNPATH"
ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
if ! "$ldconfig" -p 2>/dev/null | grep -q 'libdrover\.so\.'; then
    ldd "$make_bin" | grep -q 'libdrover\.so\.[0-9]* => not found' \
        || fail "make build finds a libdrover without LD_LIBRARY_PATH: $(ldd "$make_bin" | grep drover)"
fi
LD_LIBRARY_PATH="$LIBDIR" ldd "$make_bin" | grep -qF "libdrover.so.0 => $LIBDIR/libdrover.so.0" \
    || fail "make build does not load the installed libdrover: $(LD_LIBRARY_PATH="$LIBDIR" ldd "$make_bin" | grep drover)"
# The CMake build carries a RUNPATH to the prefix, as CMake gives every
# program it links with a library outside the system directories.
cmake_bin="$T/cmake-build/producer"
readelf -d "$cmake_bin" | grep -E 'RUNPATH|RPATH' | grep -qF "$LIBDIR" \
    || fail "cmake build has no RUNPATH to $LIBDIR"
ldd "$cmake_bin" | grep -qF "libdrover.so.0 => $LIBDIR/libdrover.so.0" \
    || fail "cmake build does not load the installed libdrover: $(ldd "$cmake_bin" | grep drover)"
# The static builds need no libdrover at run time.
for bin in "$T/src/producer-static" "$T/cmake-build/producer-static"; do
    [ -x "$bin" ] || fail "not built: $bin"
    readelf -d "$bin" | grep NEEDED | grep -q libdrover && fail "$bin needs libdrover.so"
    readelf -d "$bin" | grep NEEDED | grep -q libzmq || fail "$bin does not link libzmq"
done

# --- 3. run them against a real broker and worker -------------------------
make_keys
start_broker
start_workers worker upper 1 --plugin "$DROVER_PLUGIN:upper"

run_producer () {
    local label=$1
    shift
    "$@" upper "$JOBS" "$label" >"$T/$label.out" 2>"$T/$label.log" \
        || fail "$label exited $?: $(cat "$T/$label.log")"
    expect_eq "$(cat "$T/$label.out")" "$label: $JOBS of $JOBS results correct" "$label output"
}
LD_LIBRARY_PATH="$LIBDIR" run_producer pkg-config "$make_bin"
run_producer pkg-config-static "$T/src/producer-static"
run_producer find_package "$cmake_bin"
run_producer find_package-static "$T/cmake-build/producer-static"
# The keys matter: a worker's key may not connect as a producer
DROVER_CERT="$T/keys/worker_secret" "$cmake_bin" upper 1 worker-key \
    >"$T/worker-key.out" 2>"$T/worker-key.log"
expect_eq "$?" "3" "producer exit status with a worker's key"

# --- 4. the CMake package is relocatable --------------------------------
cp -a "$PREFIX" "$T/moved"
MOVED_LIBDIR="$T/moved/${LIBDIR#$PREFIX/}"
"$CMAKE_COMMAND" -S "$T/src/cmake" -B "$T/cmake-moved" -DCMAKE_C_COMPILER="$CC" \
    -DCMAKE_PREFIX_PATH="$T/moved" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
    >"$T/cmake-moved.log" 2>&1 || fail "find_package(drover) in a moved prefix failed"
grep -qF -- "-- libdrover: $MOVED_LIBDIR/libdrover.so" "$T/cmake-moved.log" \
    || fail "moved prefix: $(grep 'libdrover:' "$T/cmake-moved.log")"

pass "installed under $PREFIX; pkg-config and find_package builds, shared and static, each got $JOBS of $JOBS results"
