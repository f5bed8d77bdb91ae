"""Learning curve of the official Schug et al. code (smonsays/modular-hyperteacher, unmodified) on
its compositional-preference gridworld, beside hypermod's quick preference config
(configs/preference/quick/hnet_linear.toml): `configs/preference_grid.py:hnet_linear` with the
quick config's width, templates, shots, meta-batch and outer learning rate. Driven as
jax_curve.py drives the hyperteacher: `run_fewshot.run_fewshot` with our logbook, the evaluation
sets resized and the evaluation period set from outside; nothing in the reference code is edited.

usage: jax_preference_curve.py REFERENCE_CHECKOUT OUT.json STEPS EVAL_EVERY EVAL_TASKS SUPPORT SEED
"""
import json
import os
import sys
import time

from jax_curve import Logbook


def main(repo, out_path, steps, eval_every, eval_tasks, support, seed):
    sys.path.insert(0, repo)
    os.chdir(repo)
    import absl.flags

    import run_fewshot
    from configs.preference_grid import get_config
    from metax.experiment import FewshotExperiment

    absl.flags.FLAGS(["hypermod-peers"])
    cfg = get_config("hnet_linear")
    cfg.base_model_hidden_dim = 32
    cfg.num_templates = 16
    cfg.dataset_shots_train = 4
    cfg.dataset_shots_test = 4
    cfg.meta_batch_size = 16
    cfg.lr_outer = 0.001
    cfg.steps_outer = steps
    cfg.dataset_task_support = support
    cfg.seed = seed
    import jax

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
    logbook = Logbook()
    t0 = time.perf_counter()
    run_fewshot.run_fewshot(cfg, logbook=logbook)
    wall = time.perf_counter() - t0
    eval_steps = [i + 1 for i in range(steps) if i % eval_every == 0 or i == steps - 1]
    evals = [r for r in logbook.records if "valid_loss_outer" in r]
    curve = []
    for step, record in zip(eval_steps, evals):
        point = {"step": step}
        for split in ("valid", "test", "ood"):
            point[f"{split}_loss"] = record.get(f"{split}_loss_outer")
        curve.append(point)
    result = {
        "implementation": "official JAX (smonsays/modular-hyperteacher)",
        "jax": jax.__version__,
        "support": support,
        "seed": seed,
        "steps_outer": steps,
        "eval_tasks": eval_tasks,
        "wall_s": wall,
        "curve": curve,
    }
    with open(out_path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(out_path + ".tmp", out_path)
    print(json.dumps(curve[-1]) if curve else "no evaluations")


if __name__ == "__main__":
    args = sys.argv[1:8]
    if len(args) != 7:
        sys.exit(__doc__)
    repo, out, steps, every, tasks, support, seed = args
    main(repo, out, int(steps), int(every), int(tasks), support, int(seed))
