#!/usr/bin/env bash
# check_install.sh BUILD_DIR SOURCE_DIR DATA_DIR — glocal as an installed
# library (README, "Use it from C"): `cmake --install` into a temporary prefix,
# then, against that tree only (never the build tree):
#   - the files: bin/glocal, libglocal.so -> .so.MAJOR -> .so.VERSION with
#     SONAME libglocal.so.MAJOR, include/glocal/glocal.h, glocal.pc,
#     glocalConfig.cmake + glocalConfigVersion.cmake;
#   - `nm -D --defined-only` lists exactly the GLOCAL_API functions of the
#     installed header, every one named glocal_*;
#   - the header compiles alone as C11 and C++11 with -pedantic -Werror;
#   - tests/examples/motion.c built with `pkg-config --cflags --libs glocal`,
#     motion.c and motion.cpp built by a CMake project with
#     find_package(glocal), and, when libglocal.a is installed
#     (-DGLOCAL_INSTALL_STATIC=ON), motion.c on it with `pkg-config --static`
#     and with find_package(glocal COMPONENTS static);
#   - run on video/vtest_50.avi, a static camera filming people walking: the
#     homography moves no corner of the 768x576 frame by 0.5 px or more
#     (the camera does not move), the mean local motion is above 0.1 px
#     between frames 10 and 12 (people walk) and 0 for a frame with itself,
#     and every build prints the same numbers (one library);
#   - an unreadable video fails with a message naming it.
# GLOCAL_CHECK_FLAGS (tests/CMakeLists.txt: -fsanitize=... in GLOCAL_SANITIZE
# builds, whose library needs the sanitizer runtime loaded first) goes to
# every compile and link here.
set -euo pipefail
build=$1 src=$2 data=$3
video=$data/video/vtest_50.avi
model=$src/results/motion/64/glocal.h5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
extra=${GLOCAL_CHECK_FLAGS:-}
fail=0
bad() { echo "FAIL: $*"; fail=1; }

P=$tmp/prefix
cmake --install "$build" --prefix "$P" >"$tmp/install.log" || { cat "$tmp/install.log"; exit 1; }
pc=$(find "$P" -name glocal.pc)
libdir=$(dirname "$(dirname "$pc")")
major=$(sed -n 's/^#define GLOCAL_VERSION_MAJOR \([0-9]*\)$/\1/p' "$P/include/glocal/glocal.h")
for f in bin/glocal include/glocal/glocal.h; do [[ -e $P/$f ]] || bad "not installed: $f"; done
for f in libglocal.so "libglocal.so.$major" cmake/glocal/glocalConfig.cmake \
         cmake/glocal/glocalConfigVersion.cmake; do
  [[ -e $libdir/$f ]] || bad "not installed: $libdir/$f"
done
soname=$(readelf -d "$libdir/libglocal.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[[ $soname == "libglocal.so.$major" ]] || bad "SONAME is '$soname', expected libglocal.so.$major"
[[ -L $libdir/libglocal.so && -L $libdir/libglocal.so.$major ]] || bad "libglocal.so and .so.$major are not links"
"$P/bin/glocal" --version | grep -q "^glocal " || bad "the installed glocal command does not run"

# Exports: exactly the header's GLOCAL_API functions.
nm -D --defined-only "$libdir/libglocal.so" | awk '{print $NF}' | sort >"$tmp/exported"
grep -o '^GLOCAL_API [^(]*(' "$P/include/glocal/glocal.h" | grep -o '[a-z0-9_]*($' | tr -d '(' |
  sort >"$tmp/declared"
if grep -v '^glocal_' "$tmp/exported" >"$tmp/stray"; then
  bad "libglocal.so exports names outside glocal_*:"; head -20 "$tmp/stray"
fi
[[ -s $tmp/declared ]] || bad "no GLOCAL_API declarations found in the installed header"
diff "$tmp/declared" "$tmp/exported" >"$tmp/diff" || { bad "exports differ from the header (< header, > library):"; cat "$tmp/diff"; }

# The header alone, strictly.
printf '#include <glocal/glocal.h>\nint main(void) { return glocal_version() == 0; }\n' >"$tmp/h.c"
cc -std=c11 -Wall -Wextra -pedantic -Werror -fsyntax-only -I"$P/include" "$tmp/h.c" || bad "glocal.h is not clean C11"
c++ -std=c++11 -Wall -Wextra -pedantic -Werror -fsyntax-only -I"$P/include" -x c++ "$tmp/h.c" ||
  bad "glocal.h is not clean C++11"

# The examples.
export PKG_CONFIG_PATH=$libdir/pkgconfig
ex=$src/tests/examples
cc -std=c11 -Wall -Wextra -Werror $extra "$ex/motion.c" $(pkg-config --cflags --libs glocal) -lm \
   -Wl,-rpath,"$(pkg-config --variable=libdir glocal)" -o "$tmp/motion_pc" || bad "pkg-config build failed"
cmake -S "$ex" -B "$tmp/ex" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_C_FLAGS="-Wall -Wextra -Werror $extra" -DCMAKE_CXX_FLAGS="-Wall -Wextra -Werror $extra" \
      -DCMAKE_EXE_LINKER_FLAGS="$extra" \
      $( [[ -e $libdir/libglocal.a ]] && echo -DGLOCAL_EXAMPLES_STATIC=ON ) >"$tmp/cmake.log" &&
  cmake --build "$tmp/ex" >>"$tmp/cmake.log" 2>&1 || { bad "find_package build failed:"; tail -30 "$tmp/cmake.log"; }
builds="$tmp/motion_pc $tmp/ex/motion $tmp/ex/motion_cpp"
if [[ -e $libdir/libglocal.a ]]; then
  # `pkg-config --static` would also want FFmpeg's own static dependencies
  # (Debian ships FFmpeg shared only): link libglocal.a with glocal.pc's
  # Requires.private taken shared and its Libs.private, which must suffice.
  cc -std=c11 $extra "$ex/motion.c" $(pkg-config --cflags glocal) "$libdir/libglocal.a" \
     $(pkg-config --libs $(pkg-config --print-requires-private glocal)) \
     $(sed -n 's/^Libs.private: //p' "$pc") -lm -o "$tmp/motion_pc_static" ||
    bad "libglocal.a with glocal.pc's private fields: the build failed"
  builds="$builds $tmp/motion_pc_static $tmp/ex/motion_static"
fi
for b in $builds; do
  [[ $b == *static* ]] && continue
  loaded=$(ldd "$b" | awk -v so="libglocal.so.$major" '$1 == so { print $3 }')
  [[ -n $loaded && $(realpath "$loaded") == $(realpath "$libdir/libglocal.so.$major") ]] ||
    bad "$b loads '$loaded', not the installed libglocal.so.$major"
done

# Runs. corner_shift: the largest distance a corner of the frame moves under H.
corner_shift() {
  awk '/^frames/ { split($5, s, "x"); w = s[1] - 1; h = s[2] - 1 }
       /^  / { H[n++] = $1; H[n++] = $2; H[n++] = $3 }
       END { m = 0
             for (c = 0; c < 4; c++) { x = (c % 2) * w; y = int(c / 2) * h
               d = H[6] * x + H[7] * y + H[8]
               u = (H[0] * x + H[1] * y + H[2]) / d - x; v = (H[3] * x + H[4] * y + H[5]) / d - y
               if (sqrt(u * u + v * v) > m) m = sqrt(u * u + v * v) }
             printf "%.6f\n", m }' "$1"
}
local_motion() { sed -n 's/^mean local motion \([0-9.]*\) px$/\1/p' "$1"; }
check_run() {  # OUT: frames 10 -> 12
  local s l
  s=$(corner_shift "$1") l=$(local_motion "$1")
  awk -v s="$s" 'BEGIN { exit !(s < 0.5) }' || bad "$2: a corner moves $s px, camera is static"
  awk -v l="$l" 'BEGIN { exit !(l > 0.1) }' || bad "$2: mean local motion '$l' px, people walk"
}
"$tmp/motion_pc" "$video" "$model" 10 12 >"$tmp/pc.out" || bad "motion_pc failed"
cat "$tmp/pc.out"
check_run "$tmp/pc.out" "motion (pkg-config, model)"
"$tmp/motion_pc" "$video" "$model" 20 20 >"$tmp/same.out" || bad "motion_pc on one frame failed"
s=$(corner_shift "$tmp/same.out") l=$(local_motion "$tmp/same.out")
awk -v s="$s" -v l="$l" 'BEGIN { exit !(s < 0.01 && l == 0) }' ||
  bad "a frame with itself: corner shift $s px, local motion '$l' px (expected ~0, 0)"
for b in $builds; do
  [[ $b == "$tmp/motion_pc" ]] && continue
  "$b" "$video" "$model" 10 12 >"$tmp/b.out" || { bad "$b failed"; continue; }
  cmp -s "$tmp/b.out" "$tmp/pc.out" || { bad "$b prints other numbers:"; diff "$tmp/pc.out" "$tmp/b.out"; }
done
"$tmp/ex/motion" "$video" - 10 12 >"$tmp/nomodel.out" || bad "motion without a model failed"
check_run "$tmp/nomodel.out" "motion (find_package, no model)"

# Errors reach the caller with the file named.
if "$tmp/motion_pc" "$tmp/missing.avi" - 0 1 2>"$tmp/err"; then bad "a missing video did not fail"; fi
grep -q "missing.avi" "$tmp/err" || { bad "the error does not name the file:"; cat "$tmp/err"; }

[[ $fail == 0 ]] && echo "check_install: all checks passed ($(wc -l <"$tmp/exported") exported functions)"
exit $fail
