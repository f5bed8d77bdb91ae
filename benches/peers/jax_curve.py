"""Learning curve of the official Schug et al. code (smonsays/modular-hyperteacher, unmodified) on
the hyperteacher, for the side-by-side comparison with hypermod (benches/peers/curves).

The runner is driven through the official `run_fewshot.py`: `run_fewshot.run_fewshot`
with our own logbook (its `--wandb False` path crashes at the first evaluation), the evaluation
sets resized by wrapping `run_fewshot.dataset_config` (fixed at 1,024 tasks there) and the
evaluation period set after `FewshotExperiment.__init__` (fixed at 1,000 there). Nothing in the
reference code is edited. Each training step is timed (jit-compiled `step`, block_until_ready),
the evaluations are not.

usage: jax_curve.py REFERENCE_CHECKOUT OUT.json MODEL MODULES META_BATCH FIRST_ORDER STEPS
                    EVAL_EVERY EVAL_TASKS SUPPORT SEED
"""
import json
import os
import sys
import time


class Logbook:
    """Keeps every scalar the runner logs, one record per evaluation."""

    def __init__(self):
        self.records = []

    def log(self, values):
        record = {}
        for key, value in values.items():
            try:
                record[key] = float(value)
            except (TypeError, ValueError):
                pass  # histograms of non-scalar metrics
        self.records.append(record)


def main(repo, out_path, model, modules, meta_batch, first_order, steps, eval_every, eval_tasks,
         support, seed):
    from reference_config import official_config

    cfg = official_config(repo, model, modules, meta_batch, first_order, steps)
    cfg.dataset_task_support = support
    cfg.seed = seed
    import jax
    import numpy as np

    import run_fewshot
    from metax.experiment import FewshotExperiment

    original_dataset_config = run_fewshot.dataset_config

    def sized_dataset_config(name, **kwargs):
        config = original_dataset_config(name, **kwargs)
        for key in ("num_tasks_valid", "num_tasks_test", "num_tasks_ood"):
            config[key] = eval_tasks
        return config

    run_fewshot.dataset_config = sized_dataset_config

    original_init = FewshotExperiment.__init__

    def init_with_period(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.eval_every_n_steps = eval_every

    FewshotExperiment.__init__ = init_with_period

    step_seconds = []
    original_step = FewshotExperiment.step

    def timed_step(self, rng, meta_state, batch):
        t0 = time.perf_counter()
        out = original_step(self, rng, meta_state, batch)
        jax.block_until_ready(out)
        step_seconds.append(time.perf_counter() - t0)
        return out

    FewshotExperiment.step = timed_step
    logbook = Logbook()
    t0 = time.perf_counter()
    run_fewshot.run_fewshot(cfg, logbook=logbook)
    wall = time.perf_counter() - t0

    # The runner evaluates after the update of step index i (i % eval_every == 0, and the last
    # one); hypermod numbers its evaluations by updates done, so record i + 1.
    eval_steps = [i + 1 for i in range(steps) if i % eval_every == 0 or i == steps - 1]
    evals = [r for r in logbook.records if "valid_loss_outer" in r]
    curve = []
    for step, record in zip(eval_steps, evals):
        point = {"step": step}
        for split in ("valid", "test", "ood"):
            point[f"{split}_loss"] = record.get(f"{split}_loss_outer")
            point[f"{split}_acc"] = record.get(f"{split}_acc_outer")
        curve.append(point)
    timed = step_seconds[3:] if len(step_seconds) > 3 else step_seconds
    result = {
        "implementation": "official JAX (smonsays/modular-hyperteacher)",
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "model": model,
        "modules": modules,
        "meta_batch": meta_batch,
        "first_order": first_order,
        "support": support,
        "seed": seed,
        "steps_outer": steps,
        "steps_inner": cfg.steps_inner,
        "lr_inner": cfg.lr_inner,
        "shots": [cfg.dataset_shots_train, cfg.dataset_shots_test],
        "hidden_dim": cfg.base_model_hidden_dim,
        "eval_tasks": eval_tasks,
        "median_step_s": float(np.median(timed)),
        "wall_s": wall,
        "curve": curve,
    }
    with open(out_path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(out_path + ".tmp", out_path)
    print(json.dumps({k: v for k, v in result.items() if k != "curve"}))
    for point in curve:
        print(json.dumps(point))


if __name__ == "__main__":
    args = sys.argv[1:12]
    if len(args) != 11:
        sys.exit(__doc__)
    repo, out, model, modules, mb, fo, steps, every, tasks, support, seed = args
    main(repo, out, model, int(modules), int(mb), fo.lower() in ("1", "true", "yes"), int(steps),
         int(every), int(tasks), support, int(seed))
