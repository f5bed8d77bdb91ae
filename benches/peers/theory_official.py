"""Runs the authors' official theory experiment (Schug et al., `run_theory.py` of
smonsays/modular-hyperteacher, unmodified) so that hypermod's native reimplementation can be
compared with it (theory_table.py). The checkout is imported as a module; `run_theory.run(cfg)` is
called with the script's own default config, overridden by KEY=VALUE arguments.

`run_theory` imports wandb and reports only through `wandb.log`; a stand-in module is installed in
`sys.modules["wandb"]` first, so nothing reaches the network and every logged dict is kept. Each
`wandb.log` call ends one interval of `log_every` training steps followed by the evaluation of all
families (train, eval_0.167 ... eval_1.000), so the per-log `seconds` include jit compilation (first
interval) and evaluation. OUT.json is rewritten atomically after every log ("complete": false) and
at the end ("complete": true):
  {"config", "seconds", "logs": [{...logged values, "seconds": since start}], "jax", "devices"}

usage: theory_official.py REFERENCE_CHECKOUT OUT.json [KEY=VALUE ...]
"""
import json
import os
import sys
import time
import types

# Copied from run_theory.py's __main__ block at commit 2680b5c (smonsays/modular-hyperteacher).
DEFAULT_CFG = {
    "seed": 42,
    # Architecture
    "use_bias": False,
    "n_hidden": 16,
    "n_hidden_student_factor": 2,
    "n_hidden_layers": 1,
    "n_hidden_layers_student": 1,
    "n_task_student_factor": 2,
    # Optimization
    "train_step": 10000,
    "learning_rate": 1e-3,
    "weight_decay": 0,
    "scheduler": "cosine",
    "lr_step_every": 0.3,
    "lr_step_factor": 0.3,
    "cosine_alpha": 0.001,
    "inner_learning_rate": 0.003,
    "inner_step": 300,
    "meta_batch_size": 64,
    "batch_size": 256,
    "embedding_init": "constant",
    # Data
    "problem": "regression",
    "data_seed": 42,
    "n_input": 16,
    "n_output": 4,
    "datatype": "sparse",
    "n_task": 6,
    # "manual_task": "0,1,2;2,3,4;4,5,0", #"0,1;1,2;2,0;3,4;4,5;5,3",
    "manual_task": "0,1;1,2;2,0;3,4;4,5;5,3",
    "n_hot_fraction": 0.5,
    "frac_ood": 0.0,
    "continuous_combinations": True,
    "log_every": 1000,
    "second_order": False,
    "eval_batch_size": 1024,
    "eval_meta_batch_size": 512,
}


def parse_overrides(args):
    """KEY=VALUE pairs over DEFAULT_CFG. Keys must exist; a key whose default is a string keeps
    the value as a string (manual_task="0,1" or ""), others parse as bool, int or float."""
    cfg = dict(DEFAULT_CFG)
    for arg in args:
        key, sep, raw = arg.partition("=")
        if not sep or key not in cfg:
            sys.exit(f"bad override {arg!r}: expected KEY=VALUE with KEY one of {sorted(cfg)}")
        if isinstance(cfg[key], str):
            cfg[key] = raw
        elif raw.lower() in ("true", "false"):
            cfg[key] = raw.lower() == "true"
        else:
            try:
                cfg[key] = int(raw)
            except ValueError:
                try:
                    cfg[key] = float(raw)
                except ValueError:
                    sys.exit(f"bad override {arg!r}: {key} takes a number or true/false")
    n_steps = cfg["train_step"] * cfg["n_task"]
    if cfg["log_every"] < 1 or n_steps % cfg["log_every"]:
        sys.exit(f"log_every={cfg['log_every']} must divide n_steps = train_step*n_task = "
                 f"{cfg['train_step']}*{cfg['n_task']} = {n_steps} (run_theory loops "
                 f"n_steps // log_every times and would silently drop the remainder)")
    return cfg


def scalar(v):
    """Python number of a logged value (jax/numpy scalar arrays become floats)."""
    if isinstance(v, (bool, int, float, str)):
        return v
    return float(v)


def write_atomic(path, obj):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def main(repo, out_path, overrides):
    cfg = parse_overrides(overrides)
    logs = []
    result = {"config": cfg, "seconds": None, "logs": logs, "complete": False}

    def log(d, *args, **kwargs):
        rec = {k: scalar(v) for k, v in d.items()}  # float() waits for the device: stamp after
        rec["seconds"] = time.perf_counter() - t0
        rec["interval_seconds"] = rec["seconds"] - (logs[-1]["seconds"] if logs else 0.0)
        logs.append(rec)
        print(f"[theory_official] step {rec['step']}  loss {rec['loss']:.6g}  "
              f"{rec['seconds']:.1f}s (+{rec['interval_seconds']:.1f}s)", flush=True)
        write_atomic(out_path, result)

    stub = types.ModuleType("wandb")
    stub.log = log
    stub.init = lambda *a, **k: types.SimpleNamespace(id="offline", config={})
    stub.config = {}
    stub.run = types.SimpleNamespace(id="offline")
    stub.Histogram = lambda *a, **k: None
    sys.modules["wandb"] = stub

    sys.path.insert(0, os.path.abspath(repo))
    import jax
    import run_theory

    result["jax"] = jax.__version__
    result["devices"] = str(jax.devices())
    t0 = time.perf_counter()
    run_theory.run(cfg)
    result["seconds"] = time.perf_counter() - t0
    result["complete"] = True
    write_atomic(out_path, result)
    print(f"[theory_official] done in {result['seconds']:.1f}s -> {out_path}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
