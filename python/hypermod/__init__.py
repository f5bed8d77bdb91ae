"""hypermod from Python: experiments, run directories and kernels of the hypermod engine.

The engine is Rust (`hypermod._hypermod`); this module turns its JSON results into plain dicts and
Python values into the CLI's arguments, so `train`, `resume` and `sweep` mean exactly what
`hypermod train`, `hypermod train --resume` and `hypermod sweep` mean: strict configs (an unknown
key is a `ValueError` naming it, with a suggestion), run directories, exact resume.

Errors: a bad config or argument raises `ValueError`, a missing file `FileNotFoundError`, a device
or limit problem `RuntimeError`; Ctrl-C during `train`/`resume`/`sweep` raises
`KeyboardInterrupt` after the current step, leaving a checkpoint that `resume` continues exactly.
The GIL is released while the engine works.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

import numpy as np

from . import _hypermod

__version__ = _hypermod.__version__

PathLike = Union[str, "os.PathLike[str]"]
Config = Union[PathLike, Mapping[str, Any]]

__all__ = [
    "Experiment",
    "activation",
    "device_info",
    "gemm",
    "layer_norm",
    "load_run",
    "resume",
    "sweep",
    "train",
]


def _toml_literal(value: Any) -> str:
    """A Python value as the TOML literal `--set key=VALUE` expects."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_literal(v) for v in value) + "]"
    raise ValueError(f"override value {value!r} has no TOML form (use bool, number, str or list)")


def _overrides(overrides: Optional[Mapping[str, Any]]) -> List[str]:
    return [f"{k}={_toml_literal(v)}" for k, v in (overrides or {}).items()]


def _config(config: Config) -> tuple:
    """(text, is_json): a path as itself, a dict as JSON."""
    if isinstance(config, Mapping):
        return json.dumps(config), True
    return os.fspath(config), False


def _default_out(config: Config) -> str:
    stem = "config" if isinstance(config, Mapping) else Path(os.fspath(config)).stem
    return os.path.join("runs", f"{stem}-{int(time.time())}")


def train(
    config: Config,
    overrides: Optional[Mapping[str, Any]] = None,
    out: Optional[PathLike] = None,
    overwrite: bool = False,
    device: Optional[str] = None,
) -> Dict[str, Any]:
    """Trains `config` (a TOML path or a dict) into the run directory `out` and returns its
    summary.json as a dict. `overrides` are `--set` values: `{"train.steps_outer": 500}`.
    `device`: "auto" (default: `$HYPERMOD_DEVICE`, else auto), "gpu", "cpu", "lavapipe", "wgpu"."""
    text, is_json = _config(config)
    out = os.fspath(out) if out is not None else _default_out(config)
    return json.loads(_hypermod.train(text, is_json, _overrides(overrides), out, overwrite, device))


def resume(run_dir: PathLike, device: Optional[str] = None) -> Dict[str, Any]:
    """Continues the run in `run_dir` from its last checkpoint (exact) and returns its summary."""
    return json.loads(_hypermod.resume(os.fspath(run_dir), device))


def sweep(
    sweep_file: PathLike,
    out: Optional[PathLike] = None,
    overwrite: bool = False,
    device: Optional[str] = None,
) -> List[Dict[str, str]]:
    """Runs a sweep file into `out` (finished runs are kept) and returns runs.csv as a list of
    rows (dicts of strings, as the CSV holds them)."""
    import csv

    out = os.fspath(out) if out is not None else _default_out(sweep_file)
    path = _hypermod.sweep(os.fspath(sweep_file), out, overwrite, device)
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def load_run(run_dir: PathLike) -> Dict[str, Any]:
    """Reads a run directory back: `config` (dict), `metrics` (list of metrics.jsonl records),
    `summary` (dict, or None while the run is unfinished), `run` (run.json) and `checkpoint`
    (dict of numpy arrays, named as in checkpoint.safetensors; empty without a checkpoint)."""
    config, metrics, summary, run, checkpoint = _hypermod.load_run(os.fspath(run_dir))
    return {
        "config": json.loads(config),
        "metrics": [json.loads(line) for line in metrics.splitlines() if line.strip()],
        "summary": json.loads(summary) if summary is not None else None,
        "run": json.loads(run) if run is not None else None,
        "checkpoint": dict(checkpoint),
    }


class Experiment:
    """One experiment stepped from Python: `step()` trains one outer step (step `s` uses the data
    of (seed, `s`), as in `train`), `evaluate()` scores every evaluation set without changing the
    state. `steps` × `step()` then `evaluate()` gives the `final` metrics `train` reports for the
    same config and device."""

    def __init__(
        self,
        config: Config,
        overrides: Optional[Mapping[str, Any]] = None,
        device: Optional[str] = None,
    ) -> None:
        text, is_json = _config(config)
        self._inner = _hypermod._Experiment(text, is_json, _overrides(overrides), device)

    def step(self) -> Dict[str, Any]:
        """Trains one step; returns `{"step": steps done, "train": {...}, "consecutive_skips"}`."""
        return json.loads(self._inner.step())

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        """Metrics of every evaluation set at the current state, by set name."""
        return json.loads(self._inner.evaluate())

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Every tensor an exact resume needs (1-D float32 arrays, checkpoint names)."""
        return dict(self._inner.state_dict())

    def load_state_dict(self, state: Mapping[str, np.ndarray], steps_done: Optional[int] = None) -> None:
        """Overwrites the state from `state` (every name of `state_dict()`); `steps_done` sets
        the step counter (default: unchanged), which picks the data of the next step."""
        arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}
        self._inner.load_state_dict(arrays, self.steps_done if steps_done is None else steps_done)

    @property
    def steps_done(self) -> int:
        """Steps trained so far."""
        return self._inner.steps_done

    @property
    def steps(self) -> int:
        """The config's `train.steps_outer`."""
        return self._inner.steps

    @property
    def eval_every(self) -> int:
        """The config's evaluation cadence."""
        return self._inner.eval_every

    @property
    def device(self) -> str:
        """The device it runs on (e.g. "native CPU (2 threads, AVX-512)")."""
        return self._inner.device


def gemm(
    a: np.ndarray,
    b: np.ndarray,
    bias: Optional[np.ndarray] = None,
    *,
    c: Optional[np.ndarray] = None,
    trans_a: bool = False,
    trans_b: bool = False,
    alpha: float = 1.0,
    beta: float = 0.0,
    activation: str = "identity",
    device: Optional[str] = None,
) -> np.ndarray:
    """`act(alpha·op(A)·op(B) + beta·C + bias)` with the engine's batched GEMM. A is [B, M, K]
    (or [M, K]); B is [B, K, N], or one [K, N] matrix shared by every item (stride 0); bias is
    [N] or [B, N]; op transposes each item when `trans_*`. float32 in, float32 out ([B, M, N],
    or [M, N] for 2-D operands). Includes the upload and readback."""
    return _hypermod.gemm(
        _f32(a), _f32(b), _f32(bias), _f32(c), trans_a, trans_b, alpha, beta, activation, device
    )


def _f32(x: Optional[np.ndarray]) -> Optional[np.ndarray]:
    return None if x is None else np.ascontiguousarray(x, dtype=np.float32)


def layer_norm(
    x: np.ndarray,
    gamma: Optional[np.ndarray] = None,
    beta: Optional[np.ndarray] = None,
    *,
    eps: float = 1e-5,
    device: Optional[str] = None,
) -> np.ndarray:
    """LayerNorm over the last axis of `x` ([B, R, C] or [R, C]), haiku semantics:
    `(x − mean)/sqrt(var + eps)·gamma + beta`; gamma/beta are [C] (shared) or [B, C]."""
    return _hypermod.layer_norm(_f32(x), _f32(gamma), _f32(beta), eps, device)


def activation(x: np.ndarray, kind: str = "relu", *, device: Optional[str] = None) -> np.ndarray:
    """An element-wise activation ("identity", "relu" or "elu") of a [B, R, C] or [R, C] array."""
    return _hypermod.activation(_f32(x), kind, device)


def device_info(device: Optional[str] = None) -> Dict[str, Any]:
    """What `hypermod info --json` prints for `device`: name, why it was chosen, limits."""
    return json.loads(_hypermod.device_info(device))
