#!/usr/bin/env python3
"""Coefficients of layoutrt's polynomial GELU (src/cuda/gelu_poly.h), regenerable: python3 python/fit_gelu.py

GELU(x) = x * Phi(x) with Phi(x) = 1 - h for x >= 0 and h for x < 0, h = Phi(-|x|) = erfc(t) / 2, t = |x| / sqrt(2).
log2(h) = log2(erfc(t)) - 1 is smooth on [0, 4]; a degree-10 Chebyshev interpolant in u = t / 2 - 1 (t clamped to 4,
where h = 7.7e-9), written in the monomial basis of u for Horner evaluation in FP32, followed by one exp2. Prints the
C++ initializer and the errors of the FP32 evaluation (numpy float32 emulation) against float64 GELU on a dense grid,
next to those of the erff form 0.5 * x * (1 + erff(x / sqrt(2))) in FP32.
"""
import numpy as np
from numpy.polynomial import chebyshev as C
from scipy.special import erf, erfc

T, DEG = 4.0, 10


def coefficients():
    t = np.linspace(0.0, T, 40001)
    c = C.chebfit(t / T * 2 - 1, np.log2(erfc(t)) - 1.0, DEG)
    return [np.float32(v) for v in C.cheb2poly(c)]


def gelu_poly32(x, p):
    # The FP32 operations of src/cuda/gelu_poly.h (an FMA emulated in float64: the float32 product is exact there).
    x = x.astype(np.float32)
    a = np.minimum(np.abs(x), np.float32(T * np.sqrt(2.0)))
    u = (a.astype(np.float64) * np.float64(np.float32(2.0 / (T * np.sqrt(2.0)))) - 1.0).astype(np.float32)
    acc = p[-1]
    for k in range(len(p) - 2, -1, -1):
        acc = (acc.astype(np.float64) * u + np.float64(p[k])).astype(np.float32)
    h = np.exp2(acc).astype(np.float32)
    return (-(a.astype(np.float64)) * h + np.maximum(x, np.float32(0.0))).astype(np.float32)


def main():
    p = coefficients()
    print("// u^0 .. u^%d" % DEG)
    print(", ".join("%.9ef" % v for v in p))
    x = np.linspace(-12.0, 12.0, 1200001)
    ref = 0.5 * x * (1 + erf(x / np.sqrt(2.0)))
    xf = x.astype(np.float32)
    erff = (np.float32(0.5) * xf * (np.float32(1.0) + erf(xf.astype(np.float64) * np.float32(0.70710678118654752))
                                   .astype(np.float32))).astype(np.float32)
    big = np.abs(ref) > 1e-6
    for name, g in (("polynomial", gelu_poly32(x, p)), ("erff form", erff)):
        e = np.abs(g.astype(np.float64) - ref)
        print("%-10s max |err| / max(|gelu|, 1) = %.2e; max relative error where |gelu| > 1e-6 = %.2e"
              % (name, (e / np.maximum(np.abs(ref), 1.0)).max(), (e[big] / np.abs(ref[big])).max()))


if __name__ == "__main__":
    main()
