"""The Python bindings end to end: kernels against numpy, `train` against the CLI, the `Experiment`
step loop against `train`, state dicts, every error class, and Ctrl-C + resume."""

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import hypermod

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "tests" / "data" / "tiny_hyperteacher.toml")
QUICK = str(REPO / "configs" / "hyperteacher" / "quick" / "hnet_linear.toml")
SHORT = {"train.steps_outer": 40, "train.eval_every": 20}
DEVICE = "cpu"


def hypermod_bin():
    exe = Path(os.environ.get("HYPERMOD_BIN", REPO / "target" / "release" / "hypermod"))
    if not exe.exists():
        subprocess.run(["cargo", "build", "--release", "-q"], cwd=REPO, check=True)
    return str(exe)


def without_times(summary):
    return {k: v for k, v in summary.items() if k != "seconds"}


@pytest.mark.parametrize(
    "batch,m,k,n,shared,trans_a,trans_b,act",
    [
        (1, 1, 1, 1, False, False, False, "identity"),
        (3, 7, 5, 9, True, False, False, "relu"),
        (4, 17, 33, 6, False, True, False, "elu"),
        (2, 64, 31, 70, False, False, True, "identity"),
        (5, 3, 130, 2, True, True, True, "relu"),
    ],
)
def test_gemm_matches_numpy(batch, m, k, n, shared, trans_a, trans_b, act):
    rng = np.random.default_rng(batch * 1000 + m)
    a = rng.standard_normal((batch, k, m) if trans_a else (batch, m, k)).astype(np.float32)
    bshape = (n, k) if trans_b else (k, n)
    b = rng.standard_normal(bshape if shared else (batch, *bshape)).astype(np.float32)
    bias = rng.standard_normal((batch, n)).astype(np.float32)
    c0 = rng.standard_normal((batch, m, n)).astype(np.float32)
    got = hypermod.gemm(a, b, bias, c=c0, trans_a=trans_a, trans_b=trans_b, alpha=0.5,
                        beta=0.25, activation=act, device=DEVICE)
    opa = a.transpose(0, 2, 1) if trans_a else a
    opb = np.swapaxes(b, -1, -2) if trans_b else b
    want = 0.5 * (opa.astype(np.float64) @ opb) + 0.25 * c0 + bias[:, None, :]
    want = {"identity": want, "relu": np.maximum(want, 0), "elu": np.where(want > 0, want, np.expm1(want))}[act]
    assert got.shape == (batch, m, n) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.sqrt(k))


def test_gemm_2d_and_bad_shapes():
    a, b = np.ones((4, 3), np.float32), np.full((3, 2), 0.5, np.float32)
    np.testing.assert_array_equal(hypermod.gemm(a, b, device=DEVICE), np.full((4, 2), 1.5))
    with pytest.raises(ValueError, match="inner dimensions differ"):
        hypermod.gemm(a, np.ones((4, 2), np.float32), device=DEVICE)
    with pytest.raises(ValueError, match="items"):
        hypermod.gemm(np.ones((3, 4, 3), np.float32), np.ones((2, 3, 2), np.float32), device=DEVICE)
    with pytest.raises(ValueError, match="unknown activation"):
        hypermod.gemm(a, b, activation="gelu", device=DEVICE)


@pytest.mark.parametrize("shape,shared", [((7, 13), True), ((3, 5, 33), True), ((2, 4, 9), False)])
def test_layer_norm_and_activation_match_numpy(shape, shared):
    rng = np.random.default_rng(len(shape) * 10 + shape[-1])
    x = rng.standard_normal(shape).astype(np.float32)
    cols = shape[-1]
    gshape = (cols,) if shared else (shape[0], cols)
    gamma = rng.standard_normal(gshape).astype(np.float32)
    beta = rng.standard_normal(gshape).astype(np.float32)
    got = hypermod.layer_norm(x, gamma, beta, device=DEVICE)
    x64 = x.astype(np.float64)
    norm = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5)
    g = gamma if shared else gamma[:, None, :]
    b = beta if shared else beta[:, None, :]
    np.testing.assert_allclose(got, norm * g + b, rtol=1e-4, atol=1e-4)
    assert got.shape == shape
    np.testing.assert_array_equal(hypermod.activation(x, "relu", device=DEVICE), np.maximum(x, 0))
    np.testing.assert_allclose(hypermod.activation(x, "elu", device=DEVICE),
                               np.where(x > 0, x, np.expm1(x)), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError):
        hypermod.layer_norm(x, np.ones(cols + 1, np.float32), device=DEVICE)


def test_train_returns_the_cli_summary(tmp_path):
    # A quick config (shortened), trained from Python and by the CLI on the same seed and device.
    py = hypermod.train(QUICK, overrides=SHORT, out=tmp_path / "py", device=DEVICE)
    sets = [f"--set={k}={v}" for k, v in SHORT.items()]
    subprocess.run([hypermod_bin(), "--device", DEVICE, "train", QUICK, "--out", str(tmp_path / "cli"),
                    *sets], check=True, capture_output=True)
    cli = json.loads((tmp_path / "cli" / "summary.json").read_text())
    assert without_times(py) == without_times(cli)
    run = hypermod.load_run(tmp_path / "py")
    assert run["config"]["experiment"] == "hyperteacher"
    assert run["config"]["train"]["steps_outer"] == 40
    assert [r["step"] for r in run["metrics"]] == [0, 20, 40]
    assert without_times(run["summary"]) == without_times(py)
    assert run["checkpoint"]["meta"].dtype == np.float32 and run["checkpoint"]["meta"].ndim == 1


def test_step_loop_equals_train(tmp_path):
    summary = hypermod.train(TINY, overrides=SHORT, out=tmp_path / "run", device=DEVICE)
    exp = hypermod.Experiment(TINY, overrides=SHORT, device=DEVICE)
    assert exp.steps == 40 and exp.device.startswith("native CPU")
    for i in range(exp.steps):
        report = exp.step()
        assert report["step"] == i + 1
    assert exp.evaluate() == summary["final"]
    # The checkpoint's state is the experiment's after the same steps.
    ck = hypermod.load_run(tmp_path / "run")["checkpoint"]
    np.testing.assert_array_equal(ck["meta"], exp.state_dict()["meta"])


def test_config_as_a_dict(tmp_path):
    cfg = {
        "experiment": "hyperteacher",
        "task": {"modules": 3, "max_hot": 1, "shots_support": 8, "shots_query": 8},
        "model": {"kind": "hnet_linear", "width": 16},
        "train": {"seed": 3, "steps_outer": 6, "eval_every": 3, "meta_batch": 4,
                  "steps_inner": 2, "eval_tasks": 8},
    }
    summary = hypermod.train(cfg, out=tmp_path / "d", device=DEVICE)
    assert summary["steps"] == 6 and "valid" in summary["final"]
    with pytest.raises(ValueError, match="did you mean `width`"):
        hypermod.Experiment({**cfg, "model": {"kind": "hnet_linear", "widht": 16}}, device=DEVICE)


def test_state_dict_round_trip():
    a = hypermod.Experiment(TINY, overrides=SHORT, device=DEVICE)
    for _ in range(3):
        a.step()
    state = a.state_dict()
    b = hypermod.Experiment(TINY, overrides=SHORT, device=DEVICE)
    b.load_state_dict(state, steps_done=3)
    assert b.steps_done == 3
    assert a.step() == b.step()
    assert a.evaluate() == b.evaluate()
    with pytest.raises(ValueError, match="missing tensor"):
        b.load_state_dict({"meta": state["meta"]})
    with pytest.raises(ValueError, match="values"):
        b.load_state_dict({**state, "meta": state["meta"][:-1]})


def test_errors_map_to_python_exceptions(tmp_path):
    with pytest.raises(ValueError, match="did you mean `steps_outer`"):
        hypermod.train(TINY, overrides={"train.steps_outr": 3}, out=tmp_path / "a", device=DEVICE)
    with pytest.raises(ValueError, match="train.steps_outer"):
        hypermod.train(TINY, overrides={"train.steps_outer": "many"}, out=tmp_path / "b", device=DEVICE)
    with pytest.raises(FileNotFoundError):
        hypermod.train(tmp_path / "no-such.toml", out=tmp_path / "c", device=DEVICE)
    with pytest.raises(FileNotFoundError):
        hypermod.load_run(tmp_path / "not-a-run")
    with pytest.raises(FileNotFoundError):
        hypermod.resume(tmp_path / "not-a-run", device=DEVICE)
    with pytest.raises(RuntimeError, match="unknown device 'tpu'"):
        hypermod.train(TINY, out=tmp_path / "d", device="tpu")
    hypermod.train(TINY, overrides=SHORT, out=tmp_path / "e", device=DEVICE)
    with pytest.raises(RuntimeError, match="already holds"):
        hypermod.train(TINY, overrides=SHORT, out=tmp_path / "e", device=DEVICE)


def test_interrupted_train_resumes_to_the_same_numbers(tmp_path):
    long = {"train.steps_outer": 3000, "train.eval_every": 1000}
    full = hypermod.train(TINY, overrides=long, out=tmp_path / "full", device=DEVICE)
    # Ctrl-C once the run is under way (its step-0 evaluation is on disk), not after a fixed
    # delay: a fixed timer raced the run on a loaded machine.
    started = tmp_path / "cut" / "metrics.jsonl"

    def interrupt_when_started():
        for _ in range(6000):
            if started.exists():
                break
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGINT)

    # A shell that starts pytest in the background hands it SIGINT ignored; Python then has no
    # KeyboardInterrupt handler. Install it, as an interactive session has.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    killer = threading.Thread(target=interrupt_when_started)
    killer.start()
    with pytest.raises(KeyboardInterrupt):
        hypermod.train(TINY, overrides=long, out=tmp_path / "cut", device=DEVICE)
    killer.join()
    signal.signal(signal.SIGINT, previous)
    ck = hypermod.load_run(tmp_path / "cut")
    assert ck["summary"] is None and ck["checkpoint"], "the interrupted run left a checkpoint"
    resumed = hypermod.resume(tmp_path / "cut", device=DEVICE)
    assert without_times(resumed) == without_times(full)
    metrics = lambda d: [without_times(r) for r in hypermod.load_run(d)["metrics"]]  # noqa: E731
    assert metrics(tmp_path / "cut") == metrics(tmp_path / "full")


def test_sweep_returns_runs_csv_rows(tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(
        f'base = "{TINY}"\nseeds = [1, 2]\nset = ["train.steps_outer=4", "train.eval_every=2"]\n'
        '[grid]\n"train.lr_outer" = [0.01]\n'
    )
    rows = hypermod.sweep(sweep, out=tmp_path / "s", device=DEVICE)
    assert len(rows) == 2 and {r["seed"] for r in rows} == {"1", "2"}


def test_theory_experiment_from_python(tmp_path):
    # The theory experiment through the same API: step loop == train, and a batched sweep.
    theory = str(REPO / "tests" / "data" / "tiny_theory.toml")
    summary = hypermod.train(theory, out=tmp_path / "run", device=DEVICE)
    assert summary["label"] == "blessed" and set(summary["final"]) == {"train", "h1", "h2", "h3"}
    exp = hypermod.Experiment(theory, device=DEVICE)
    for _ in range(exp.steps):
        exp.step()
    assert exp.evaluate() == summary["final"]
    assert set(exp.state_dict()) >= {"student", "best_student", "outer.m"}
    rows = hypermod.sweep(REPO / "tests" / "data" / "sweeps" / "tiny_theory.toml",
                          out=tmp_path / "sweep", device=DEVICE)
    assert len(rows) == 4 and {r["label"] for r in rows} == {"blessed", "doomed"}
    assert all(float(r["ood_loss"]) > 0 for r in rows)


def test_sine_experiment_from_python(tmp_path):
    # Boopathy's sine regression: train == the step loop, a batched sweep with its summary.csv.
    sine = str(REPO / "tests" / "data" / "tiny_sine.toml")
    summary = hypermod.train(sine, out=tmp_path / "run", device=DEVICE)
    assert summary["method"] == "modular_kernel" and set(summary["final"]) == {"valid", "test", "ood"}
    assert 0.0 <= summary["recovery"] <= 1.0 and summary["kernel_objective"] > 0
    exp = hypermod.Experiment(sine, device=DEVICE)
    for _ in range(exp.steps):
        exp.step()
    assert exp.evaluate() == summary["final"]
    assert set(exp.state_dict()) >= {"params", "best", "opt.m"}
    rows = hypermod.sweep(REPO / "tests" / "data" / "sweeps" / "tiny_sine.toml",
                          out=tmp_path / "sweep", device=DEVICE)
    assert len(rows) == 18 and {r["method"] for r in rows} == {"monolithic", "modular_random", "modular_kernel"}
    lines = (tmp_path / "sweep" / "summary.csv").read_text().splitlines()
    assert lines[0].startswith("method,m,sample_complexity") and len(lines) == 4
