"""Tables of the side-by-side learning curves written by benches/peers/curves: for every
meta-gradient order and task support, mean ± standard deviation over seeds of valid / test / OOD
accuracy and loss at each evaluation, hypermod beside the official JAX code, and the final
in-distribution accuracy and test − OOD gaps. Writes DIR/curves.md and DIR/curves.json.

usage: curves_table.py DIR
"""
import json
import math
import os
import re
import sys
from collections import defaultdict

METRICS = ["valid_acc", "test_acc", "ood_acc", "gap_acc", "valid_loss", "test_loss", "ood_loss",
           "gap_loss"]
NAME = re.compile(r"^(hypermod|jax)-(first_order|second_order)-(\w+?)-(\d+)(\.json)?$")


def hypermod_curve(run_dir):
    curve = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            record = json.loads(line)
            point = {"step": record["step"]}
            for split in ("valid", "test", "ood"):
                point[f"{split}_loss"] = record["sets"][split]["loss"]
                point[f"{split}_acc"] = record["sets"][split]["acc"]
            curve.append(point)
    return curve


def with_gaps(curve):
    for point in curve:
        point["gap_acc"] = point["test_acc"] - point["ood_acc"]
        point["gap_loss"] = point["ood_loss"] - point["test_loss"]
    return curve


def load(directory):
    """{(order, support): {impl: {seed: curve}}}, and JAX's seconds per step."""
    runs = defaultdict(lambda: defaultdict(dict))
    step_seconds = defaultdict(list)
    for entry in sorted(os.listdir(directory)):
        match = NAME.match(entry)
        if not match:
            continue
        impl, order, support, seed, is_json = match.groups()
        path = os.path.join(directory, entry)
        if impl == "hypermod":
            if is_json or not os.path.exists(os.path.join(path, "summary.json")):
                continue
            curve = hypermod_curve(path)
        else:
            if not is_json:
                continue
            result = json.load(open(path))
            curve = result["curve"]
            step_seconds[order].append(result["median_step_s"])
        runs[(order, support)][impl][int(seed)] = with_gaps(curve)
    return runs, step_seconds


def mean_sd(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def fmt(mean, sd):
    if mean is None:
        return "–"
    return f"{mean:.3f}" if sd is None else f"{mean:.3f} ± {sd:.3f}"


def nearest(curve, step):
    """The evaluation at `step`; the official runner's first one is after update 1, hypermod's
    before any update (both are the row `step 0/1`)."""
    best = min(curve, key=lambda p: abs(p["step"] - step))
    return best if abs(best["step"] - step) <= 1 else None


def summarise(runs):
    summary = {}
    # Second order (the paper's algorithm) first, then first order; supports alphabetically.
    for (order, support), impls in sorted(runs.items(),
                                          key=lambda kv: (kv[0][0] != "second_order", kv[0][1])):
        # The rows are hypermod's evaluation steps (updates done); the official runner evaluates
        # one update later (after update 1, 251, ...), matched to the row within one step.
        reference = impls.get("hypermod") or next(iter(impls.values()))
        steps = sorted({p["step"] for c in reference.values() for p in c})
        table = {}
        for impl, curves in impls.items():
            table[impl] = {"seeds": sorted(curves), "steps": {}}
            for step in steps:
                points = [nearest(c, step) for c in curves.values()]
                points = [p for p in points if p is not None]
                table[impl]["steps"][step] = {
                    m: mean_sd([p[m] for p in points]) for m in METRICS
                }
        summary[f"{order}/{support}"] = table
    return summary


def markdown(summary, step_seconds):
    lines = []
    for key, table in summary.items():
        order, support = key.split("/")
        lines.append(f"**{order.replace('_', ' ')}, task support `{support}`** "
                     f"(mean ± sd over seeds; hypermod seeds {table.get('hypermod', {}).get('seeds')}, "
                     f"official seeds {table.get('jax', {}).get('seeds')})")
        lines.append("")
        lines.append("| step | impl | valid acc | test acc | ood acc | gap acc (test − ood) "
                     "| valid loss | test loss | ood loss | gap loss (ood − test) |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        steps = sorted({s for t in table.values() for s in t["steps"]})
        for step in steps:
            for impl in ("hypermod", "jax"):
                if impl not in table:
                    continue
                row = table[impl]["steps"][step]
                label = "hypermod" if impl == "hypermod" else "official"
                lines.append(f"| {step} | {label} | " +
                             " | ".join(fmt(*row[m]) for m in METRICS) + " |")
        lines.append("")
    for order, seconds in sorted(step_seconds.items()):
        m, sd = mean_sd(seconds)
        lines.append(f"official code, {order.replace('_', ' ')}: {fmt(m, sd)} s per outer step "
                     f"(median per run, during these runs)")
    return "\n".join(lines) + "\n"


def plot(summary, path):
    """curves.png: test and OOD accuracy vs outer step, one panel per order and support,
    hypermod solid and the official code dashed, ± one sd shaded (needs matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    keys = list(summary)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for impl, style in (("hypermod", "-"), ("jax", "--")):
            if impl not in summary[key]:
                continue
            steps = sorted(summary[key][impl]["steps"])
            for metric, colour in (("test_acc", "tab:blue"), ("ood_acc", "tab:red")):
                pts = [summary[key][impl]["steps"][s][metric] for s in steps]
                xs = [s for s, (m, _) in zip(steps, pts) if m is not None]
                means = [m for m, _ in pts if m is not None]
                sds = [sd or 0.0 for m, sd in pts if m is not None]
                label = f"{'hypermod' if impl == 'hypermod' else 'official'} {metric[:-4]}"
                ax.plot(xs, means, style, color=colour, label=label)
                ax.fill_between(xs, [m - d for m, d in zip(means, sds)],
                                [m + d for m, d in zip(means, sds)], color=colour, alpha=0.12)
        ax.set_title(key.replace("_", " ").replace("/", ", "), fontsize=9)
        ax.set_xlabel("outer step")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main(directory):
    runs, step_seconds = load(directory)
    summary = summarise(runs)
    plot(summary, os.path.join(directory, "curves.png"))
    text = markdown(summary, step_seconds)
    with open(os.path.join(directory, "curves.md"), "w") as f:
        f.write(text)
    with open(os.path.join(directory, "curves.json"), "w") as f:
        json.dump({"summary": summary, "official_step_seconds": step_seconds}, f, indent=1)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
