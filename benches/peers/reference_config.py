"""The official code's hyperteacher config, shared by jax_step.py and jax_curve.py: imports the
checkout (smonsays/modular-hyperteacher, unmodified) the way its `run_fewshot.py` expects
(path and working directory set to it, absl flags parsed before use) and returns
`configs/hyperteacher.py:get_config(model)` itself (a ConfigDict, not a dict: `run_fewshot`
rewrites its `dataset` entry) with our overrides.
"""
import os
import sys


def official_config(repo, model, modules, meta_batch, first_order, steps, num_hot=2):
    sys.path.insert(0, repo)
    os.chdir(repo)
    import absl.flags

    import run_fewshot  # noqa: F401  (defines the absl flags parsed below)
    from configs.hyperteacher import get_config

    absl.flags.FLAGS(["hypermod-peers"])
    cfg = get_config(model)
    cfg.dataset_num_experts = modules
    cfg.dataset_num_hot = num_hot
    cfg.meta_batch_size = meta_batch
    cfg.first_order = first_order
    cfg.steps_outer = steps
    # The shipped hnet_deepmlp config names its meta-model "hnet_deepmlp", but run_fewshot picks
    # the weight generator as meta_model.split("_")[0] ("hnet"), which MetaHypernetwork rejects
    # with a bare ValueError; hnet_linear's config spells it "linear_hnet". "deepmlp_hnet" selects
    # the DeepBank the config means (a config value, the code stays unmodified).
    if cfg.meta_model == "hnet_deepmlp":
        cfg.meta_model = "deepmlp_hnet"
    return cfg
