"""Side-by-side markdown tables of the official theory experiment (theory_official.py's JSON) and
a hypermod run of the same experiment (its run directory's metrics.jsonl), so the two
implementations can be compared per evaluation family and over training.

Table 1: the final evaluation (the official JSON's last log; metrics.jsonl's last line) with one
row per family (train, h1..h6 = number of active modules; official keys "train" and
f"eval_{h/6:.3f}") and an "official | hypermod" column pair per metric. Table 2: the training
loss at every logged step of either run (official "loss" = mean outer loss over the interval of
log_every steps that ends there; hypermod train.loss), then the h=6 evaluation loss of both.
Missing values print as "–".

usage: theory_table.py OFFICIAL.json HYPERMOD_RUN_DIR OUT.md
"""
import json
import os
import sys

# hypermod per-set field -> official key suffix after "_{key}_" ("{e}": averaged over experts).
METRICS = [
    ("loss", "outer_loss"),
    ("rel_loss_sample", "outer_relative_wrt_sample_loss"),
    ("rel_loss_population", "outer_relative_wrt_population_loss"),
    ("r2_train_vs_ood", "train_vs_ood_r2_expert_{e}"),
    ("r2_ood_vs_ood", "ood_vs_ood_r2_expert_{e}"),
    # run_theory.py joins "_train_vs_ood" + "template_alignment_mean" with no underscore.
    ("template_alignment", "train_vs_oodtemplate_alignment_mean"),
    ("template_alignment_ood", "ood_vs_oodtemplate_alignment_mean"),
    ("gen_avr_alignment", "generated_weight_avr_alignment_mean"),
    ("gen_max_alignment", "generated_weight_max_alignment_mean"),
]
FAMILIES = [("train", "train")] + [(f"h{h}", f"eval_{h / 6:.3f}") for h in range(1, 7)]


def official_value(log, key, suffix):
    if "{e}" not in suffix:
        return log.get(f"_{key}_{suffix}")
    vals, e = [], 0
    while f"_{key}_{suffix.format(e=e)}" in log:
        vals.append(log[f"_{key}_{suffix.format(e=e)}"])
        e += 1
    return sum(vals) / len(vals) if vals else None


def fmt(v):
    return "–" if v is None else f"{v:.4g}"


def row(cells):
    return "| " + " | ".join(cells) + " |"


def main(official_path, run_dir, out_path):
    official = json.load(open(official_path))
    ologs = official["logs"]
    hlines = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl")) if l.strip()]
    olast = ologs[-1] if ologs else {}
    hlast = hlines[-1] if hlines else {}

    out = [f"# Theory experiment: official (run_theory.py) vs hypermod", "",
           f"- official: `{official_path}`, step {olast.get('step', '–')}, "
           f"{fmt(official.get('seconds'))} s wall clock"
           + ("" if official.get("complete", True) else " (INCOMPLETE run)")
           + f", jax {official.get('jax', '?')} on {official.get('devices', '?')}",
           f"- hypermod: `{run_dir}`, step {hlast.get('step', '–')}, "
           f"{fmt(hlast.get('seconds'))} s", "",
           "## Final evaluation per family", "",
           row(["family"] + [f"{m} official | {m} hypermod" for m, _ in METRICS]),
           row(["---"] * (1 + 2 * len(METRICS)))]
    for fam, key in FAMILIES:
        hset = hlast.get("sets", {}).get(fam, {})
        cells = [fam]
        for hname, suffix in METRICS:
            cells += [fmt(official_value(olast, key, suffix)), fmt(hset.get(hname))]
        out.append(row(cells))

    osteps = {l["step"]: l for l in ologs}
    hsteps = {l["step"]: l for l in hlines}
    out += ["", "## Learning curves", "",
            row(["step", "train loss official", "train loss hypermod",
                 "h6 loss official", "h6 loss hypermod"]),
            row(["---"] * 5)]
    for s in sorted(set(osteps) | set(hsteps)):
        o, h = osteps.get(s, {}), hsteps.get(s, {})
        out.append(row([str(s), fmt(o.get("loss")), fmt(h.get("train", {}).get("loss")),
                        fmt(o.get("_eval_1.000_outer_loss")),
                        fmt(h.get("sets", {}).get("h6", {}).get("loss"))]))
    text = "\n".join(out) + "\n"
    tmp = f"{out_path}.tmp{os.getpid()}"
    open(tmp, "w").write(text)
    os.replace(tmp, out_path)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
