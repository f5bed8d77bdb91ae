"""Seconds per outer step of the official Schug et al. code (smonsays/modular-hyperteacher,
unmodified) on the hyperteacher, timed around its `run_fewshot.py` experiment: the
jit-compiled `FewshotExperiment.step`, `jax.block_until_ready`, compile steps skipped, no
evaluation.

usage: jax_step.py REFERENCE_CHECKOUT OUT.json MODEL MODULES META_BATCH FIRST_ORDER STEPS
"""
import json
import os
import sys
import time


def main(repo, out_path, model, modules, meta_batch, first_order, steps, warmup=3):
    from reference_config import official_config

    cfg = official_config(repo, model, modules, meta_batch, first_order, warmup + steps)
    import jax
    import numpy as np

    import run_fewshot
    from metax.experiment import FewshotExperiment

    times = []

    def timed_run(self, rng, meta_state):
        batches = iter(self.metatrainset)
        for i in range(warmup + steps):
            batch = next(batches)
            rng, rng_step = jax.random.split(rng)
            t0 = time.perf_counter()
            meta_state, metrics = self.step(rng_step, meta_state, batch)
            jax.block_until_ready((meta_state, metrics))
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        return meta_state

    FewshotExperiment._run = timed_run
    run_fewshot.run_fewshot(cfg, logbook=None)
    result = {
        "implementation": "official JAX (smonsays/modular-hyperteacher)",
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "model": model,
        "modules": modules,
        "meta_batch": meta_batch,
        "first_order": first_order,
        "steps_inner": cfg.steps_inner,
        "shots": [cfg.dataset_shots_train, cfg.dataset_shots_test],
        "hidden_dim": cfg.base_model_hidden_dim,
        "median_s": float(np.median(times)),
        "steps_timed": len(times),
    }
    json.dump(result, open(out_path, "w"), indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    repo, out, model, modules, mb, fo, steps = sys.argv[1:8]
    main(repo, out, model, int(modules), int(mb), fo.lower() in ("1", "true", "yes"), int(steps))
