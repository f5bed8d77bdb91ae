"""Type stubs of the hypermod Python package (see `hypermod/__init__.py` for the docs)."""

import os
from typing import Any, Dict, List, Mapping, Optional, Union

import numpy as np
import numpy.typing as npt

__version__: str

PathLike = Union[str, "os.PathLike[str]"]
Config = Union[PathLike, Mapping[str, Any]]

def train(
    config: Config,
    overrides: Optional[Mapping[str, Any]] = ...,
    out: Optional[PathLike] = ...,
    overwrite: bool = ...,
    device: Optional[str] = ...,
) -> Dict[str, Any]:
    """Trains `config` (a TOML path or a dict) into the run directory `out`; returns summary.json.

    Raises ValueError (bad config or override: names the key, suggests one), FileNotFoundError
    (missing config), RuntimeError (device, limits, a run already in `out`), KeyboardInterrupt
    (Ctrl-C: after the current step, with a checkpoint `resume` continues exactly)."""

def resume(run_dir: PathLike, device: Optional[str] = ...) -> Dict[str, Any]:
    """Continues the run in `run_dir` from its last checkpoint; returns summary.json."""

def sweep(
    sweep_file: PathLike,
    out: Optional[PathLike] = ...,
    overwrite: bool = ...,
    device: Optional[str] = ...,
) -> List[Dict[str, str]]:
    """Runs a sweep file into `out`; returns the rows of runs.csv."""

def load_run(run_dir: PathLike) -> Dict[str, Any]:
    """A run directory as {"config", "metrics", "summary", "run", "checkpoint"} (arrays: numpy)."""

class Experiment:
    """One experiment stepped from Python; `steps` × step() then evaluate() equals train()'s
    final metrics for the same config and device."""

    def __init__(
        self,
        config: Config,
        overrides: Optional[Mapping[str, Any]] = ...,
        device: Optional[str] = ...,
    ) -> None: ...
    def step(self) -> Dict[str, Any]:
        """One outer step: {"step", "train": {"loss", "acc", "support_loss"}, "consecutive_skips"}."""
    def evaluate(self) -> Dict[str, Dict[str, float]]:
        """Every evaluation set's metrics at the current state."""
    def state_dict(self) -> Dict[str, npt.NDArray[np.float32]]:
        """Every tensor an exact resume needs, by checkpoint name (1-D float32)."""
    def load_state_dict(
        self, state: Mapping[str, npt.ArrayLike], steps_done: Optional[int] = ...
    ) -> None:
        """Restores `state_dict()` output (ValueError on a missing or mis-sized tensor)."""
    @property
    def steps_done(self) -> int: ...
    @property
    def steps(self) -> int: ...
    @property
    def eval_every(self) -> int: ...
    @property
    def device(self) -> str: ...

def gemm(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    bias: Optional[npt.ArrayLike] = ...,
    *,
    c: Optional[npt.ArrayLike] = ...,
    trans_a: bool = ...,
    trans_b: bool = ...,
    alpha: float = ...,
    beta: float = ...,
    activation: str = ...,
    device: Optional[str] = ...,
) -> npt.NDArray[np.float32]:
    """act(alpha·op(A)·op(B) + beta·C + bias), batched; a 2-D B is shared by every item."""

def layer_norm(
    x: npt.ArrayLike,
    gamma: Optional[npt.ArrayLike] = ...,
    beta: Optional[npt.ArrayLike] = ...,
    *,
    eps: float = ...,
    device: Optional[str] = ...,
) -> npt.NDArray[np.float32]:
    """LayerNorm over the last axis (haiku semantics); gamma/beta [C] shared or [B, C]."""

def activation(
    x: npt.ArrayLike, kind: str = ..., *, device: Optional[str] = ...
) -> npt.NDArray[np.float32]:
    """Element-wise "identity", "relu" or "elu"."""

def device_info(device: Optional[str] = ...) -> Dict[str, Any]:
    """`hypermod info --json` for `device`."""
