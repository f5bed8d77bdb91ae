"""Blessed vs doomed task lists of a theory sweep, per evaluation family: mean ± sd over every
run of each label (all task lists × seeds) of the final ½·MSE and train-vs-OOD latent R² on the
training tasks and on each h-hot family, plus template alignment. Reads the sweep's runs.csv
(columns label, final_<family>_loss, final_<family>_r2, alignment) and prints markdown.

usage: python3 tools/theory_families.py SWEEP_DIR [OUT.md]
"""
import csv
import math
import os
import sys


def mean_sd(vals):
    vals = [v for v in vals if math.isfinite(v)]
    if not vals:
        return "–"
    m = sum(vals) / len(vals)
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return f"{m:.4g} ± {sd:.2g}"


def num(text):
    try:
        return float(text)
    except ValueError:
        return math.nan


def main(sweep, out=None):
    rows = list(csv.DictReader(open(os.path.join(sweep, "runs.csv"))))
    families = [c[len("final_"):-len("_loss")] for c in rows[0] if c.startswith("final_") and c.endswith("_loss")]
    families.sort(key=lambda f: (f != "train", f))
    labels = ["blessed", "doomed"]
    counts = {l: sum(r["label"] == l for r in rows) for l in labels}
    lines = [f"Runs: {counts['blessed']} blessed, {counts['doomed']} doomed (task lists × seeds).", "",
             "| family | loss blessed | loss doomed | latent R² blessed | latent R² doomed |",
             "|---|---|---|---|---|"]
    for f in families:
        cells = [f]
        for metric in ("loss", "r2"):
            for l in labels:
                cells.append(mean_sd([num(r[f"final_{f}_{metric}"]) for r in rows if r["label"] == l]))
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["mean over h-hot"]
    for col in ("ood_loss", "latent_r2"):
        for l in labels:
            cells.append(mean_sd([num(r[col]) for r in rows if r["label"] == l]))
    lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| | blessed | doomed |", "|---|---|---|"]
    for col, name in (("alignment", "template alignment"), ("gen_alignment", "generated-weight alignment")):
        lines.append(f"| {name} | " + " | ".join(mean_sd([num(r[col]) for r in rows if r["label"] == l]) for l in labels) + " |")
    text = "\n".join(lines) + "\n"
    if out:
        open(out, "w").write(text)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    main(*sys.argv[1:])
