"""The sine sweep benchmark's table: hypermod batched, hypermod one run at a time and PyTorch
one run at a time, in runs/s.

  python3 benches/peers/sine_table.py IN_DIR

reads IN_DIR/hypermod.json (`hypermod bench sweep --json`) and IN_DIR/torch.json
(`sine_torch.py --json`), writes IN_DIR/sine_bench.md and prints it.
"""
import json
import os
import platform
import sys


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def fmt_rate(v):
    if v >= 100:
        return f"{v:.0f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.4f}"


def fmt_seconds(v):
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def table(hm, th):
    torch_rate = th["runs_per_s"]
    rows = [
        (f"hypermod, {hm['runs']} runs as one batch", hm["batched_runs_per_s"]),
        ("hypermod, one run at a time", hm["sequential_runs_per_s"]),
        ("PyTorch, one run at a time", torch_rate),
    ]
    method = hm.get("method", th.get("method"))
    m = hm.get("m", th.get("m"))
    lines = [
        f"# sine sweep: {method}, m = {m}, {hm.get('steps', th.get('steps'))} training steps "
        f"per run",
        "",
        f"machine: {platform.uname().machine}, {cpu_model()}, {cores()} cores",
        f"hypermod: {hm.get('adapter', '?')}; PyTorch {th.get('torch', '?')}, "
        f"{th.get('threads', '?')} threads",
        "",
        "| | runs/s | seconds per run | ratio vs PyTorch |",
        "|---|---:|---:|---:|",
    ]
    for name, rate in rows:
        ratio = f"{rate / torch_rate:.2f}×" if torch_rate > 0 else "—"
        sec = fmt_seconds(1.0 / rate) if rate > 0 else "—"
        lines.append(f"| {name} | {fmt_rate(rate)} | {sec} | {ratio} |")
    lines.append("")
    notes = [
        f"hypermod batched: {hm['runs']} runs in {hm['batched_s']:.2f} s; one at a time: the "
        f"first {hm['sequential_sampled_runs']} runs in {hm['sequential_s']:.2f} s "
        f"(batch speed-up {hm['speedup']:.2f}×, run 1 bit-identical both ways: "
        f"{'yes' if hm.get('identical') else 'NO'}).",
        f"PyTorch: {th['runs']} runs one after another in {th['seconds_total']:.2f} s "
        f"(each timed end to end: set-up, data, "
        + ("kernel initialisation, " if th.get("method") == "modular_kernel" else "")
        + "training, evaluations)"
        + (f"; kernel-init gradient by {th['kernel_grad']}" if th.get("method") ==
           "modular_kernel" and "kernel_grad" in th else "") + ".",
    ]
    per_run = th.get("per_run") or []
    if per_run:
        tests = sorted(r["test_mse"] for r in per_run)
        notes.append(f"PyTorch test MSE at the best validation: median "
                     f"{tests[len(tests) // 2]:.3f} over {len(tests)} runs.")
    mismatch = [k for k in ("method", "m", "steps")
                if k in hm and k in th and hm[k] != th[k]]
    if mismatch:
        notes.append("WARNING: the two reports differ in "
                     + ", ".join(f"{k} ({hm[k]} vs {th[k]})" for k in mismatch)
                     + ": the rows do not measure the same runs.")
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) != 1:
        sys.exit(__doc__)
    d = argv[0]
    with open(os.path.join(d, "hypermod.json")) as f:
        hm = json.load(f)
    with open(os.path.join(d, "torch.json")) as f:
        th = json.load(f)
    md = table(hm, th)
    with open(os.path.join(d, "sine_bench.md"), "w") as f:
        f.write(md)
    sys.stdout.write(md)


if __name__ == "__main__":
    main(sys.argv[1:])
