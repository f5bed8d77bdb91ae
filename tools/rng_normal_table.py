#!/usr/bin/env python3
"""Generates NORMAL_TABLE of src/ops/rng.rs: piecewise polynomials of the standard normal
inverse CDF Phi^-1(q) for q in (0, 1/2), fitted with mpmath (50 digits) and rounded to f32.

Segment (j, s), j = 0..31, s = 0..3, covers q = 2^(j-33) * (1 + (s + t)/4), t in [0, 1); the
polynomial is in x = t - 1/2, coefficients highest degree first, DEG+1 per segment.
Usage: python3 tools/rng_normal_table.py > /tmp/table.rs   (needs mpmath)
"""
import struct
import sys

import mpmath as mp

mp.mp.dps = 50
DEG = 6


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", float(x)))[0]


def f32(x):
    return struct.unpack("<f", struct.pack("<f", float(x)))[0]


def main():
    words = []
    worst = 0.0
    for j in range(32):
        for s in range(4):
            def f(x, j=j, s=s):
                q = mp.ldexp(1 + (s + x + mp.mpf(0.5)) / 4, j - 33)
                return -mp.sqrt(2) * mp.erfinv(1 - 2 * q)

            coef = mp.chebyfit(f, [-0.5, 0.5], DEG + 1)
            cf = [f32(c) for c in coef]
            words += [f32_bits(c) for c in cf]
            # Error of the f32-rounded coefficients evaluated exactly.
            for k in range(201):
                x = mp.mpf(k) / 200 - mp.mpf(0.5)
                err = abs(mp.polyval([mp.mpf(c) for c in cf], x) - f(x))
                worst = max(worst, float(err))
    print(f"// max |poly - Phi^-1| = {worst:.3e}", file=sys.stderr)
    print(f"const NORMAL_TABLE: [u32; {len(words)}] = [")
    for i in range(0, len(words), 7):
        print("    " + ", ".join(f"0x{w:08x}" for w in words[i:i + 7]) + ",")
    print("];")


if __name__ == "__main__":
    main()
