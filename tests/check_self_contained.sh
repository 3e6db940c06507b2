#!/usr/bin/env bash
# check_self_contained.sh SOURCE_DIR DATA_DIR — the repository is all a user
# has (tests/data/README.md): no tracked file except reports written by
# earlier runs names a folder beside the clone (../shared or /work/shared),
# and the sample data the tests were built with lies inside the repository
# and holds every file the tests and scripts/bench name.
set -euo pipefail
src=$1 data=$2
cd "$src"
fail=0
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  files=$(git ls-files | grep -v -E '^(results/|tests/check_self_contained\.sh$)')
else
  files=$(find . -type f -not -path './build*' -not -path './results/*' -not -path './.git/*' \
          -not -name check_self_contained.sh | sed 's|^\./||')
fi
hits=$(printf '%s\n' "$files" | xargs -d '\n' grep -n -I -E '\.\./shared|/work/shared' 2>/dev/null || true)
if [[ -n $hits ]]; then
  echo "these lines name a folder outside the repository:"
  echo "$hits"
  fail=1
fi
real_data=$(cd "$data" 2>/dev/null && pwd -P || echo "$data")
real_src=$(pwd -P)
case "$real_data/" in
  "$real_src"/*) ;;
  *) if [[ -z ${GLOCAL_ALLOW_OUTSIDE_DATA:-} ]]; then
       echo "GLOCAL_DATA=$data is outside the repository ($real_src)"; fail=1
     fi ;;
esac
for f in ucf101/videos/v_ApplyEyeMakeup_g01_c01.avi video/vtest_50.avi video/box_150.mp4 video/cup_90.mp4 \
         ucf101/splits/classInd.txt ucf101/splits/trainlist01.txt ucf101/splits/testlist01.txt \
         flow/generated/0000000-img0.ppm flow/generated/0000001-gt.flo \
         textures/cc0/astronaut.png homography/ca_udhn_lists/Test_List.txt; do
  [[ -r $data/$f ]] || { echo "missing sample file: $data/$f"; fail=1; }
done
exit $fail
