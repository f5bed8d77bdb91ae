"""The official hyperteacher's soft-target statistics (metax/data/dataset/teacher.py, unmodified)
beside hypermod's (`hypermod teacher-stats ... --json`), for the same settings and teacher seeds
(issue 12, item 6). Per seed and set (in-distribution tasks = mode "test", held-out = "ood"):
mean per-sample max probability and entropy, deciles 1/5/9, and the class balance (mean over
tasks of the share of inputs whose argmax is the task's most frequent class); then both
generators' mean ± sd over seeds and Welch's t of the per-seed means.

usage: teacher_stats.py REFERENCE_CHECKOUT HYPERMOD.json OUT.json MODULES NUM_HOT SUPPORT
"""
import json
import math
import os
import sys


def set_stats(y):
    """y: tasks × inputs × classes soft targets (numpy)."""
    import numpy as np

    y = np.asarray(y, dtype=np.float64)
    max_prob = y.max(-1)
    logs = np.where(y > 0, np.log(np.where(y > 0, y, 1.0)), 0.0)
    entropy = -(y * logs).sum(-1)
    arg = y.argmax(-1)
    classes = y.shape[-1]
    counts = np.stack([(arg == c).sum(-1) for c in range(classes)], -1)
    deciles = lambda v: [float(x) for x in np.sort(v.ravel())[
        [min(int(q * v.size), v.size - 1) for q in (0.1, 0.5, 0.9)]]]
    return {
        "mean_max_prob": float(max_prob.mean()),
        "max_prob_deciles": deciles(max_prob),
        "mean_entropy": float(entropy.mean()),
        "entropy_deciles": deciles(entropy),
        "majority_class_share": float((counts.max(-1) / y.shape[1]).mean()),
    }


def spread(values):
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0
    return {"mean": m, "sd": sd}


def welch_t(a, b):
    sa, sb = spread(a), spread(b)
    se = math.sqrt(sa["sd"] ** 2 / len(a) + sb["sd"] ** 2 / len(b))
    return (sa["mean"] - sb["mean"]) / se if se > 0 else float("nan")


def main(repo, hypermod_json, out_path, modules, num_hot, support):
    hypermod_json, out_path = os.path.abspath(hypermod_json), os.path.abspath(out_path)
    sys.path.insert(0, repo)
    os.chdir(repo)
    import jax

    from metax.data.dataset.teacher import HyperTeacher

    ours = json.load(open(hypermod_json))
    tasks, inputs = ours["tasks"], ours["inputs"]
    official = []
    for entry in ours["seeds"]:
        seed = entry["seed"]
        teacher = HyperTeacher(
            input_dim=16, output_dim=8, hidden_dim=32, num_hidden=3, num_experts=modules,
            num_hot=num_hot, frac_ood=0.25, scale=1.0, classification=True,
            normalize_classifier=True, targets_temperature=0.1, continuous_combinations=False,
            chunking=False, task_support=support, seed=seed,
        )
        rng_in, rng_ood = jax.random.split(jax.random.PRNGKey(seed + 1))
        official.append({
            "seed": seed,
            "in_dist": set_stats(teacher.sample(rng_in, tasks, inputs, "test").y),
            "ood": set_stats(teacher.sample(rng_ood, tasks, inputs, "ood").y),
        })
    rows = []
    for split in ("in_dist", "ood"):
        for figure in ("mean_max_prob", "mean_entropy", "majority_class_share"):
            a = [s[split][figure] for s in ours["seeds"]]
            b = [s[split][figure] for s in official]
            rows.append({"set": split, "figure": figure, "hypermod": spread(a),
                         "official": spread(b), "welch_t": welch_t(a, b)})
    result = {"tasks": tasks, "inputs": inputs, "seeds": [s["seed"] for s in official],
              "modules": modules, "num_hot": num_hot, "support": support,
              "official_per_seed": official, "comparison": rows}
    with open(out_path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(out_path + ".tmp", out_path)
    print(f"{len(official)} teacher seeds, {tasks} tasks × {inputs} inputs per set, M = {modules}, "
          f"K = {num_hot}, support {support}; mean ± sd over seeds")
    print("| set | figure | hypermod | official | Welch t |")
    print("|---|---|---|---|---|")
    for r in rows:
        h, o = r["hypermod"], r["official"]
        print(f"| {r['set']} | {r['figure']} | {h['mean']:.4f} ± {h['sd']:.4f} | "
              f"{o['mean']:.4f} ± {o['sd']:.4f} | {r['welch_t']:+.2f} |")


if __name__ == "__main__":
    if len(sys.argv) != 7:
        sys.exit(__doc__)
    repo, ours, out, m, k, support = sys.argv[1:7]
    main(repo, ours, out, int(m), int(k), support)
