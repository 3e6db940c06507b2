#!/usr/bin/env python3
"""OpenCV's DISOpticalFlow on the frames bench_dis wrote, for the interleaved
comparison in scripts/bench. Prints one JSON line like bench_dis run.

  dis_opencv.py FRAMES full|half THREADS ultrafast|fast|medium REPEAT [FIELD=VALUE...]

FIELD=VALUE overrides a parameter with bench_dis's dis_config names
(finest_scale, patch_size, patch_stride, grad_descent_iters,
var_refine_iters, use_mean_normalization, use_spatial_propagation).
OpenCV comes from Debian's python3-opencv; exits 3 when absent.
"""
import json
import sys

try:
    import cv2
    import flow_bench  # bench/flow_bench.py: timing and EPE, shared with the other script
except ImportError as e:  # the comparison is optional
    print(f"dis_opencv.py: skipped ({e})", file=sys.stderr)
    sys.exit(3)

PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
           "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
           "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
SETTERS = {"finest_scale": "setFinestScale", "patch_size": "setPatchSize",
           "patch_stride": "setPatchStride",
           "grad_descent_iters": "setGradientDescentIterations",
           "var_refine_iters": "setVariationalRefinementIterations",
           "use_mean_normalization": "setUseMeanNormalization",
           "use_spatial_propagation": "setUseSpatialPropagation"}


def main():
    if len(sys.argv) < 6 or sys.argv[2] not in ("full", "half") or sys.argv[4] not in PRESETS:
        print(__doc__, file=sys.stderr)
        return 2
    frames, which, threads, preset, repeat = sys.argv[1:6]
    cv2.setNumThreads(int(threads))
    dis = cv2.DISOpticalFlow_create(PRESETS[preset])
    for kv in sys.argv[6:]:
        k, _, v = kv.partition("=")
        if k not in SETTERS:
            print(f"override '{kv}': expected one of {', '.join(SETTERS)}", file=sys.stderr)
            return 2
        getattr(dis, SETTERS[k])(int(v))
    pairs, gts = [], []
    with open(f"{frames}/pairs.txt") as f:
        for line in f:
            k, _name, _w, _h, gt = line.split()
            ims = [cv2.imread(f"{frames}/pair{k}_{which}_{j}.png", cv2.IMREAD_GRAYSCALE)
                   for j in range(2)]
            if any(im is None for im in ims):
                print(f"dis_opencv.py: missing frames for pair {k}", file=sys.stderr)
                return 1
            pairs.append(ims)
            gts.append(gt)
    ms, flows = flow_bench.time_pairs(lambda a, b: dis.calc(a, b, None), pairs, repeat)
    sizes = {im[0].shape for im in pairs}
    size = "%dx%d" % (pairs[0][0].shape[1], pairs[0][0].shape[0]) if len(sizes) == 1 else "native"
    out = {"impl": "opencv " + cv2.__version__, "preset": preset, "size": size,
           "threads": int(threads), "ms_per_pair": round(ms, 2)}
    if which == "full":
        out["epe"] = [flow_bench.epe(flows[p], gt, 4) for p, gt in enumerate(gts)]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
