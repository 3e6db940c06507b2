"""flow_bench.py — what bench/tvl1_opencv.py and bench/dis_opencv.py share:
timing a flow method over the pairs (median ms per pair) and its EPE against
Middlebury .flo ground truth (pixels whose truth is known, |value| <= 1e9)."""
import time

import numpy as np


def read_flo(path):
    with open(path, "rb") as f:
        magic = np.frombuffer(f.read(4), "<f4")[0]
        if magic != 202021.25:
            raise ValueError(f"{path}: not a .flo file")
        w, h = np.frombuffer(f.read(8), "<i4")
        return np.frombuffer(f.read(), "<f4").reshape(h, w, 2)


def time_pairs(calc, pairs, repeat):
    """Runs calc(a, b) on every pair, repeat rounds: (median ms per pair, the last flows)."""
    ms, flows = [], [None] * len(pairs)
    for _ in range(max(int(repeat), 1)):
        t0 = time.perf_counter()
        for p, (a, b) in enumerate(pairs):
            flows[p] = calc(a, b)
        ms.append((time.perf_counter() - t0) * 1000 / len(pairs))
    ms.sort()
    return ms[len(ms) // 2], flows


def epe(flow, gt_path, digits):
    """Mean end-point error of flow (H, W, 2) against the .flo at gt_path, rounded."""
    g = read_flo(gt_path)
    known = (np.abs(g) <= 1e9).all(axis=2)
    d = np.hypot(*(flow - g)[known].T)
    return round(float(d.mean()), digits)
