#!/usr/bin/env python3
"""OpenCV's DualTVL1 on the frames bench_tvl1 wrote, for the interleaved
comparison in scripts/bench. Prints one JSON line like bench_tvl1 run.

  tvl1_opencv.py FRAMES WxH THREADS default|opencv REPEAT [DATA]

"opencv" is OpenCV's own defaults; "default" sets glocal's default
parameters (IPOL: zoom 0.5, as many scales as the image allows, no median
filter), so both programs solve the same problem. OpenCV comes from Debian's
python3-opencv (cv2.optflow is in its contrib build); exits 3 when absent.
"""
import json
import math
import sys

try:
    import cv2
    import flow_bench  # bench/flow_bench.py: timing and EPE, shared with the other script
except ImportError as e:  # the comparison is optional
    print(f"tvl1_opencv.py: skipped ({e})", file=sys.stderr)
    sys.exit(3)


def ipol_scales(w, h, zoom):
    # glocal's default: IPOL's cap, coarsest side >= 8 px.
    n = int(1 + math.log(math.hypot(w, h) / 16.0) / math.log(1.0 / zoom))
    n = max(n, 1)
    sw, sh, k = w, h, 1
    while k < n:
        sw, sh = int(sw * zoom + 0.5), int(sh * zoom + 0.5)
        if sw < 8 or sh < 8:
            break
        k += 1
    return k


def main():
    if len(sys.argv) not in (6, 7):
        print(__doc__, file=sys.stderr)
        return 2
    frames, size, threads, config, repeat = sys.argv[1:6]
    data = sys.argv[6] if len(sys.argv) == 7 else None
    w, h = map(int, size.split("x"))
    cv2.setNumThreads(int(threads))
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    if config == "default":
        tvl1.setScaleStep(0.5)
        tvl1.setScalesNumber(ipol_scales(w, h, 0.5))
        tvl1.setMedianFiltering(1)  # off
    elif config != "opencv":
        print(f"config '{config}': expected default or opencv", file=sys.stderr)
        return 2
    pairs = []
    for p in range(2):
        pairs.append([cv2.imread(f"{frames}/pair{p}_{w}x{h}_{k}.png", cv2.IMREAD_GRAYSCALE)
                      for k in range(2)])
        if any(im is None for im in pairs[-1]):
            print(f"tvl1_opencv.py: missing frames for pair {p} at {size}", file=sys.stderr)
            return 1
    ms, flows = flow_bench.time_pairs(lambda a, b: tvl1.calc(a, b, None), pairs, repeat)
    out = {"impl": "opencv " + cv2.__version__, "config": config, "size": size,
           "threads": int(threads), "ms_per_pair": round(ms, 1)}
    if data and (w, h) == (512, 384):
        out["epe"] = [flow_bench.epe(flows[p], f"{data}/000000{p}-gt.flo", 3) for p in range(2)]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
