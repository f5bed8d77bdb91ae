"""numpy (OpenBLAS) and PyTorch (CPU, when installed) on the GEMM shapes of a
`hypermod bench kernels --json` report.

PEERS_TORCH_DEVICE=cuda times PyTorch on the GPU instead (cuBLAS; synchronised around every
call), for the device run; PEERS_NUMPY=0 leaves numpy out (a GPU machine's CPU is no peer).

Reads hypermod's records, times the same computation with each peer on this machine (same
dtype, preallocated outputs, median of N after warm-up) and writes a JSON list of
{kernel, shape, numpy_ms, numpy_gflops, torch_ms, torch_gflops}. Shapes are parsed from
hypermod's shape strings: "B × (M×K)[ᵀ]·(K×N)[ shared][ +bias Relu]".
"""
import json
import os
import re
import sys
import time

import numpy as np

SHAPE = re.compile(
    r"(\d+) × \((\d+)×(\d+)\)(ᵀ?)·\((\d+)×(\d+)\)( shared)?( \+bias (\w+))?"
)


def bench(fn, warmup=3, iters=15):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def parse(shape):
    m = SHAPE.fullmatch(shape.strip())
    if not m:
        return None
    b, rows, k, trans, _, n = (int(m.group(i)) if i != 4 else m.group(i) for i in range(1, 7))
    return b, rows, k, n, bool(trans), m.group(7) is not None, m.group(9)


def torch_case(shape):
    """The same computation in PyTorch (`torch.matmul` with `out=`, then bias + ReLU in place)."""
    import torch

    p = parse(shape)
    if p is None:
        return None
    b, rows, k, n, trans, shared, act = p
    dev = TORCH_DEVICE
    g = torch.Generator().manual_seed(0)
    a = torch.randn((b, k, rows) if trans else (b, rows, k), generator=g).to(dev)
    if trans:
        a = a.transpose(1, 2)
    w = torch.randn((k, n) if shared else (b, k, n), generator=g).to(dev)
    bias = torch.randn((b, 1, n), generator=g).to(dev)
    c = torch.empty((b, rows, n), device=dev)
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)

    def fn():
        with torch.no_grad():
            torch.matmul(a, w, out=c)
            if act:
                c.add_(bias).relu_()
        sync()

    return fn, 2.0 * b * rows * n * k


def case(shape):
    m = SHAPE.fullmatch(shape.strip())
    if not m:
        return None
    b, rows, k, trans, k2, n = (int(m.group(i)) if i != 4 else m.group(i) for i in range(1, 7))
    shared, act = m.group(7) is not None, m.group(9)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((b, k, rows) if trans else (b, rows, k), dtype=np.float32)
    if trans:
        a = a.transpose(0, 2, 1)  # a view, as hypermod reads the stored K×M operand
    w = rng.standard_normal((k, n) if shared else (b, k, n), dtype=np.float32)
    bias = rng.standard_normal((b, 1, n), dtype=np.float32)
    c = np.empty((b, rows, n), dtype=np.float32)
    if b == 1 and not shared:
        a2, w2, c2 = a[0], w[0], c[0]
        mm = lambda: np.matmul(a2, w2, out=c2)
    else:
        mm = lambda: np.matmul(a, w, out=c)
    if act:
        def fn():
            mm()
            np.add(c, bias, out=c)
            np.maximum(c, 0.0, out=c)
    else:
        fn = mm
    return fn, 2.0 * b * rows * n * k


def main(report_path, out_path):
    records = json.load(open(report_path))["records"]
    out = []
    for r in records:
        if not r["kernel"].startswith("gemm"):
            continue
        c = case(r["shape"])
        if c is None:
            print(f"skipping unparsed shape {r['shape']!r}", file=sys.stderr)
            continue
        fn, flops = c
        rec = {"kernel": r["kernel"], "shape": r["shape"]}
        if NUMPY:
            s = bench(fn)
            rec.update({"numpy_ms": s * 1e3, "numpy_gflops": flops / s / 1e9})
        if TORCH:
            fn, flops = torch_case(r["shape"])
            s = bench(fn)
            rec.update({"torch_ms": s * 1e3, "torch_gflops": flops / s / 1e9})
        out.append(rec)
    versions = {"numpy": np.__version__, "blas": blas_name()}
    if TORCH:
        import torch
        versions["torch"] = f"{torch.__version__} ({torch.get_num_threads()} threads)"
        versions["torch_device"] = TORCH_DEVICE
        if TORCH_DEVICE.startswith("cuda"):
            versions["torch_gpu"] = torch.cuda.get_device_name()
    json.dump({**versions, "records": out}, open(out_path, "w"), indent=1)


try:
    import torch  # noqa: F401
    TORCH = True
except Exception:  # not installed, or a build that cannot load here
    TORCH = False
TORCH_DEVICE = os.environ.get("PEERS_TORCH_DEVICE", "cpu")
NUMPY = os.environ.get("PEERS_NUMPY", "1") != "0"


def blas_name():
    try:
        cfg = np.show_config(mode="dicts")
        return cfg["Build Dependencies"]["blas"]["name"]
    except Exception:  # older numpy
        return "unknown"


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
