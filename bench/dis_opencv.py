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
import time

try:
    import cv2
    import numpy as np
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


def read_flo(path):
    with open(path, "rb") as f:
        magic = np.frombuffer(f.read(4), "<f4")[0]
        if magic != 202021.25:
            raise ValueError(f"{path}: not a .flo file")
        w, h = np.frombuffer(f.read(8), "<i4")
        return np.frombuffer(f.read(), "<f4").reshape(h, w, 2)


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
    ms, flows = [], [None] * len(pairs)
    for _ in range(max(int(repeat), 1)):
        t0 = time.perf_counter()
        for p, (a, b) in enumerate(pairs):
            flows[p] = dis.calc(a, b, None)
        ms.append((time.perf_counter() - t0) * 1000 / len(pairs))
    ms.sort()
    sizes = {im[0].shape for im in pairs}
    size = "%dx%d" % (pairs[0][0].shape[1], pairs[0][0].shape[0]) if len(sizes) == 1 else "native"
    out = {"impl": "opencv " + cv2.__version__, "preset": preset, "size": size,
           "threads": int(threads), "ms_per_pair": round(ms[len(ms) // 2], 2)}
    if which == "full":
        epe = []
        for p, gt in enumerate(gts):
            g = read_flo(gt)
            known = (np.abs(g) <= 1e9).all(axis=2)
            d = np.hypot(*(flows[p] - g)[known].T)
            epe.append(round(float(d.mean()), 4))
        out["epe"] = epe
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
