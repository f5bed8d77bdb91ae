#!/usr/bin/env python3
"""Sample complexity of a sine sweep at several thresholds, from its runs.csv.

The same rule as `summary.csv` (src/experiments/sine/sample_complexity.rs): per (method, m) the
mean test MSE over the finished, non-diverged runs of each n; the smallest n at which it falls
to the threshold or below, log n interpolated linearly in log MSE between the grid points around
the crossing; the first grid point if it is already below; '–' if never. Also prints the ratio
of each method's n* to modular_kernel's and the geometric means over m ≥ 4.

    python3 tools/sine_thresholds.py RUNS_DIR [THRESHOLD ...]      (default 0.5 0.2 0.1)
"""
import csv
import math
import sys
from collections import defaultdict


def crossing(points, threshold):
    for k, (n, mse) in enumerate(points):
        if mse <= threshold:
            if k == 0:
                return float(n)
            n0, e0 = points[k - 1]
            if not math.isfinite(e0) or mse <= 0:
                return float(n)
            t = (math.log(e0) - math.log(threshold)) / (math.log(e0) - math.log(mse))
            t = min(max(t, 0.0), 1.0)
            return math.exp(math.log(n0) + t * (math.log(n) - math.log(n0)))
    return None


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    rows = list(csv.DictReader(open(f"{sys.argv[1]}/runs.csv")))
    thresholds = [float(t) for t in sys.argv[2:]] or [0.5, 0.2, 0.1]
    curves = defaultdict(lambda: defaultdict(list))
    for r in rows:
        mse = float(r["test_mse"]) if r["test_mse"] else math.nan
        if r["diverged"] != "true" and math.isfinite(mse):
            curves[(r["method"], int(r["m"]))][int(r["n"])].append(mse)
    methods = sorted({k[0] for k in curves})
    ms = sorted({k[1] for k in curves})
    for th in thresholds:
        print(f"\nthreshold {th}·Var(y): sample complexity n*")
        print("| m | " + " | ".join(methods) + " |")
        print("|---" * (len(methods) + 1) + "|")
        table = {}
        for m in ms:
            cells = []
            for meth in methods:
                pts = sorted((n, sum(v) / len(v)) for n, v in curves[(meth, m)].items())
                sc = crossing(pts, th)
                table[(meth, m)] = sc
                cells.append("–" if sc is None else f"{sc:.0f}")
            print(f"| {m} | " + " | ".join(cells) + " |")
        for meth in methods:
            if meth == "modular_kernel":
                continue
            ratios = [table[(meth, m)] / table[("modular_kernel", m)] for m in ms
                      if m >= 4 and table.get((meth, m)) and table.get(("modular_kernel", m))]
            if ratios:
                g = math.exp(sum(map(math.log, ratios)) / len(ratios))
                print(f"geometric mean over m ≥ 4 of n*({meth}) / n*(modular_kernel): {g:.2f} "
                      f"({len(ratios)} m values reached by both)")


if __name__ == "__main__":
    main()
