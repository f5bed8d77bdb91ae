"""Stepping a hypermod experiment from Python and logging it to TensorBoard.

`hypermod.Experiment` trains one outer step per `step()` and scores every evaluation set with
`evaluate()`, so any tracker can sit in the loop. This one writes TensorBoard event files with
the `tensorboard` package's own writer (no TensorFlow or PyTorch needed):

    python python/examples/tensorboard_logging.py configs/hyperteacher/quick/hnet_linear.toml runs/tb
    tensorboard --logdir runs/tb

Every numeric training metric goes to `train/<name>` at every step, every evaluation set's
metrics to `<set>/<name>` at step 0, every `eval_every` steps and the last step, as `hypermod
train` evaluates.
"""

from __future__ import annotations

import sys
from typing import Any, Dict, Mapping, Optional

import hypermod
from tensorboard.summary import Writer


def _scalars(writer: Writer, prefix: str, metrics: Mapping[str, Any], step: int) -> None:
    for name, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            writer.add_scalar(f"{prefix}/{name}", float(value), step=step)


def log_to_tensorboard(
    config: hypermod.Config,
    logdir: str,
    overrides: Optional[Mapping[str, Any]] = None,
    device: Optional[str] = None,
) -> Dict[str, Dict[str, float]]:
    """Trains `config` for its steps, logging to `logdir`; returns the final evaluation."""
    exp = hypermod.Experiment(config, overrides, device=device)
    writer = Writer(logdir)
    try:
        sets = exp.evaluate()
        for name, metrics in sets.items():
            _scalars(writer, name, metrics, 0)
        while exp.steps_done < exp.steps:
            report = exp.step()
            step = report["step"]
            _scalars(writer, "train", report["train"], step)
            if step % exp.eval_every == 0 or step == exp.steps:
                sets = exp.evaluate()
                for name, metrics in sets.items():
                    _scalars(writer, name, metrics, step)
    finally:
        writer.close()
    return sets


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: tensorboard_logging.py CONFIG LOGDIR")
    final = log_to_tensorboard(sys.argv[1], sys.argv[2])
    print({name: m.get("loss") for name, m in final.items()})
