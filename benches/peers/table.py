"""Merges the peers measurements of one `benches/peers/run` into the ratio tables (markdown to
stdout and DIR/peers.md, everything to DIR/peers.json)."""
import json
import os
import platform
import sys


def load(path):
    return json.load(open(path)) if os.path.exists(path) else None


def main(d):
    native = load(f"{d}/hypermod_native_kernels.json")
    lavapipe = load(f"{d}/hypermod_lavapipe_kernels.json")
    numpy = load(f"{d}/numpy_gemm.json")
    lines = []
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines.append(f"machine: {cpu}, {os.cpu_count()} logical CPUs")
    if native:
        lines.append(f"hypermod native: {native['adapter']['name']}")
    if numpy:
        lines.append(f"numpy {numpy['numpy']} ({numpy['blas']})"
                     + (f", PyTorch {numpy['torch']}" if "torch" in numpy else ""))
    if numpy:
        lines.append("")
        lines.append("| GEMM | shape | hypermod native GFLOP/s | numpy GFLOP/s | native / numpy "
                     "| PyTorch GFLOP/s | native / PyTorch | hypermod lavapipe GFLOP/s "
                     "| native / lavapipe |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
    by_key = lambda recs: {(r["kernel"], r["shape"]): r for r in recs}
    nat = by_key(native["records"]) if native else {}
    lav = by_key(lavapipe["records"]) if lavapipe else {}
    rows = []
    for r in numpy["records"] if numpy else []:
        key = (r["kernel"], r["shape"])
        n, l = nat.get(key), lav.get(key)
        row = {"kernel": r["kernel"], "shape": r["shape"], "numpy_gflops": r["numpy_gflops"],
               "torch_gflops": r.get("torch_gflops"),
               "native_gflops": n["gflops"] if n else None,
               "lavapipe_gflops": l["gflops"] if l else None}
        rows.append(row)
        f = lambda v: f"{v:.1f}" if v is not None else "—"
        ratio = lambda a, b: f"{a / b:.2f}×" if a and b else "—"
        lines.append(f"| {r['kernel']} | {r['shape']} | {f(row['native_gflops'])} | "
                     f"{f(r['numpy_gflops'])} | {ratio(row['native_gflops'], r['numpy_gflops'])} | "
                     f"{f(row['torch_gflops'])} | "
                     f"{ratio(row['native_gflops'], row['torch_gflops'])} | "
                     f"{f(row['lavapipe_gflops'])} | "
                     f"{ratio(row['native_gflops'], row['lavapipe_gflops'])} |")
    names = {"hypermod_native_step": "hypermod, native CPU backend",
             "hypermod_lavapipe_step": "hypermod, WGSL on lavapipe",
             "jax_step": "official JAX code (jit, CPU)"}
    steps = {}
    for model in ("hnet_linear", "hnet_deepmlp", "anil"):
        for order in ("first_order", "second_order"):
            # Runs before the per-model file names timed hnet_linear as `{impl}_step_{order}`.
            old = model == "hnet_linear"
            found = {k: load(f"{d}/{k}_{model}_{order}.json")
                     or (load(f"{d}/{k}_{order}.json") if old else None) for k in names}
            if not any(found.values()):
                continue
            steps[f"{model}/{order}"] = found
            lines.append("")
            inner = ("512-wide body, 100 inner steps on minibatches of 64" if model == "anil"
                     else "width 128, 10 inner steps")
            lines.append(f"| hyperteacher outer step ({model}, M = 4, K = 2, 16 tasks, 256 + 256 "
                         f"shots, {inner}, {order.replace('_', ' ')}) | s/step "
                         "| vs official JAX |")
            lines.append("|---|---|---|")
            jax_s = found["jax_step"]["median_s"] if found["jax_step"] else None
            for k, v in found.items():
                if v is None:
                    continue
                s = v["median_s"]
                if jax_s and k != "jax_step":
                    speed = f"{jax_s / s:.2f}× faster" if s <= jax_s else f"{s / jax_s:.1f}× slower"
                else:
                    speed = "—"
                lines.append(f"| {names[k]} | {s:.4f} | {speed} |")
    text = "\n".join(lines)
    print(text)
    open(f"{d}/peers.md", "w").write(text + "\n")
    json.dump({"gemm": rows, "steps": steps, "machine": cpu}, open(f"{d}/peers.json", "w"),
              indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
