"""The guide's TensorBoard example (python/examples/tensorboard_logging.py) runs, and what it logs
reads back with TensorBoard's own event reader: every training step's loss, every evaluation set
at step 0, the cadence and the last step, and final values equal to `evaluate()`'s."""

import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "tests" / "data" / "tiny_hyperteacher.toml")

if os.environ.get("CI") not in ("true", "1"):
    pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.util.tensor_util import make_ndarray  # noqa: E402


def load_example():
    path = REPO / "python" / "examples" / "tensorboard_logging.py"
    spec = importlib.util.spec_from_file_location("tensorboard_logging", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tensorboard_example_logs_every_step_and_evaluation(tmp_path):
    example = load_example()
    logdir = str(tmp_path / "tb")
    final = example.log_to_tensorboard(
        TINY, logdir, {"train.steps_outer": 6, "train.eval_every": 4}, device="cpu"
    )
    events = EventAccumulator(logdir)
    events.Reload()
    tags = set(events.Tags()["tensors"])

    def series(tag):
        return {e.step: float(make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)}

    assert sorted(series("train/loss")) == [1, 2, 3, 4, 5, 6]
    assert {"valid/loss", "ood/loss"} <= tags, tags
    assert sorted(series("valid/loss")) == [0, 4, 6]
    for name, metrics in final.items():
        for key, value in metrics.items():
            assert series(f"{name}/{key}")[6] == pytest.approx(value, rel=1e-6)
