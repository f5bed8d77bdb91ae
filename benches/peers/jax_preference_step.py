"""Seconds per outer step of the official Schug et al. code (smonsays/modular-hyperteacher,
unmodified) on its compositional-preference gridworld, timed around its `run_fewshot.py`
experiment as jax_step.py does for the hyperteacher: the jit-compiled `FewshotExperiment.step`
(demonstration generation happens in the data loader, outside it, and is timed apart), then
`jax.block_until_ready`; compile steps skipped, no evaluation.

usage: jax_preference_step.py REFERENCE_CHECKOUT OUT.json MODEL META_BATCH FIRST_ORDER STEPS
                              WIDTH TEMPLATES SHOTS
"""
import json
import os
import sys
import time


def main(repo, out_path, model, meta_batch, first_order, steps, width, templates, shots,
         warmup=3):
    sys.path.insert(0, repo)
    os.chdir(repo)
    import absl.flags

    import run_fewshot
    from configs.preference_grid import get_config

    absl.flags.FLAGS(["hypermod-peers"])
    cfg = get_config(model)
    cfg.meta_batch_size = meta_batch
    cfg.first_order = first_order
    cfg.steps_outer = warmup + steps
    cfg.base_model_hidden_dim = width
    if "num_templates" in cfg:
        cfg.num_templates = templates
    cfg.dataset_shots_train = shots
    cfg.dataset_shots_test = shots
    if cfg.meta_model == "hnet_deepmlp":
        cfg.meta_model = "deepmlp_hnet"  # as reference_config.py explains
    import jax
    import numpy as np
    from metax.experiment import FewshotExperiment

    step_times, data_times = [], []

    def timed_run(self, rng, meta_state):
        batches = iter(self.metatrainset)
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            batch = next(batches)
            jax.block_until_ready(batch)
            t1 = time.perf_counter()
            rng, rng_step = jax.random.split(rng)
            meta_state, metrics = self.step(rng_step, meta_state, batch)
            jax.block_until_ready((meta_state, metrics))
            if i >= warmup:
                data_times.append(t1 - t0)
                step_times.append(time.perf_counter() - t1)
        return meta_state

    FewshotExperiment._run = timed_run
    run_fewshot.run_fewshot(cfg, logbook=None)
    result = {
        "implementation": "official JAX (smonsays/modular-hyperteacher)",
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "model": model,
        "meta_batch": meta_batch,
        "first_order": first_order,
        "width": width,
        "templates": templates,
        "shots": shots,
        "median_step_s": float(np.median(step_times)),
        "median_data_s": float(np.median(data_times)),
        "median_total_s": float(np.median(np.add(step_times, data_times))),
        "steps_timed": len(step_times),
    }
    json.dump(result, open(out_path, "w"), indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    repo, out, model, mb, fo, steps, width, templates, shots = sys.argv[1:10]
    main(repo, out, model, int(mb), fo.lower() in ("1", "true", "yes"), int(steps), int(width),
         int(templates), int(shots))
