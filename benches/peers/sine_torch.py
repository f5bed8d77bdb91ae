"""The PyTorch peer of hypermod's `sine` experiment (Boopathy et al.'s sine-wave modular
regression): the same runs a researcher would write in plain PyTorch, trained ONE AT A TIME on
the CPU, timed end to end per run, for the `bench sweep` comparison (`sine_table.py`).

One run, as hypermod's `src/experiments/sine` does it (RNG streams differ, distributions match):

- task: K true modules with unit projections u_i (Gaussian, normalised), phases ψ_il ~ U[0, 2π),
  y = (1/√K)·Σ_i Σ_l a_l·sin(ω_l·u_iᵀx + ψ_il), standardised with the EXACT mean and variance
  under x ~ N(0, I_m) (closed form, as hypermod's `task.rs`);
- data, materialised: n training samples, n_valid validation and n_test test samples
  (x ~ N(0, I)), and n_test OOD samples (x ~ N(0, ood_scale²·I));
- models: `monolithic` = ReLU MLP m → hidden… → 1; `modular_*` = K̂ modules, each a bias-free
  projection m → b̂ (N(0, 1/m)) then a ReLU MLP b̂ → 64 → 64 → 1, outputs summed with 1/√K̂,
  all modules batched with torch.matmul/baddbmm over a module axis. Other weights: truncated
  normal (±2σ, σ = 1/√fan_in, no rescaling; haiku's default, as hypermod), biases U(±1/√fan_in);
- `modular_kernel`: Algorithm 1 on every module at once before training (projections to unit
  columns, then `kernel_init.steps` Adam steps on the projections only of
  Σ_modules yᵀ(AAᵀ + εI)⁻¹y, A the hidden features at the initial weights, ε = ridge·tr(K)/B
  detached, batched Cholesky; columns back to unit norm after each step);
- training: `steps` Adam steps (betas 0.9/0.999, eps 1e-8) on minibatches drawn with
  replacement, MSE; evaluation at step 0, every `eval_every` steps and at the end; the result is
  the test/OOD MSE at the run's best validation MSE.

Defaults are hypermod's: its struct defaults overlaid with `--config` (configs/sine/default.toml
unless told), then the command-line flags. Usage:

  /work/peers-venv/bin/python benches/peers/sine_torch.py --method modular_kernel --m 4 \
      --runs 18 --n 100,237,562,1334,3162,7499,17783,42170,100000 --json OUT/torch.json
"""
import argparse
import json
import math
import os
import sys
import time

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CONFIG = os.path.join(HERE, "..", "..", "configs", "sine", "default.toml")

# hypermod's struct defaults (src/experiments/sine/config.rs), which a config file overlays.
STRUCT_DEFAULTS = {
    "task": {"m": 4, "modules": 4, "module_dim": 1, "frequencies": [1.0, 3.0, 5.0],
             "amplitudes": [1.0, 0.5, 0.2], "projections": "random", "n_train": 1000,
             "holdout_combination": False},
    "model": {"method": "modular_kernel", "hidden": [256, 256], "modules": 0,
              "module_dim": 0, "module_hidden": [64, 64]},
    "kernel_init": {"steps": 500, "lr": 0.01, "batch": 256, "ridge": 1e-3},
    "train": {"seed": 1, "steps": 3000, "batch": 128, "lr": 1e-3, "weight_decay": 0.0,
              "eval_every": 250},
    "eval": {"n_valid": 1000, "n_test": 10000, "ood_scale": 2.0, "threshold": 0.5},
}


def load_config(path):
    cfg = {k: dict(v) for k, v in STRUCT_DEFAULTS.items()}
    if path and tomllib is not None and os.path.exists(path):
        with open(path, "rb") as f:
            table = tomllib.load(f)
        for section, values in table.items():
            if isinstance(values, dict) and section in cfg:
                cfg[section].update(values)
    return cfg


# ---------------------------------------------------------------------------------------------
# Task


class SineTask:
    """One run's true modules; `targets(x)` gives standardised y (float64 numpy)."""

    def __init__(self, rng, m, k, freqs, amps):
        u = rng.standard_normal((k, m))
        self.u = u / np.linalg.norm(u, axis=1, keepdims=True)
        self.freqs = np.asarray(freqs, dtype=np.float64)
        self.amps = np.asarray(amps, dtype=np.float64)
        self.psi = rng.uniform(0.0, 2 * math.pi, (k, len(freqs)))
        self.k = k
        self.mean, var = self.raw_moments()
        self.std = math.sqrt(var)

    def raw_moments(self):
        """Exact mean and variance of the raw target under x ~ N(0, I): each argument
        gᵀx + ψ is Gaussian, E sin = sin ψ·e^{−|g|²/2}, E sin·sin by the product formula."""
        g = (self.freqs[None, :, None] * self.u[:, None, :]).reshape(-1, self.u.shape[1])
        a = np.tile(self.amps, self.k)
        p = self.psi.reshape(-1)
        e = np.sin(p) * np.exp(-0.5 * (g * g).sum(1))
        mean = (a * e).sum() / math.sqrt(self.k)
        minus = ((g[:, None, :] - g[None, :, :]) ** 2).sum(-1)
        plus = ((g[:, None, :] + g[None, :, :]) ** 2).sum(-1)
        e2 = 0.5 * (np.cos(p[:, None] - p[None, :]) * np.exp(-0.5 * minus)
                    - np.cos(p[:, None] + p[None, :]) * np.exp(-0.5 * plus))
        var = (a[:, None] * a[None, :] * (e2 - e[:, None] * e[None, :])).sum() / self.k
        return mean, var

    def targets(self, x):
        z = x @ self.u.T  # [N, K]
        raw = (self.amps * np.sin(self.freqs * z[:, :, None] + self.psi[None])).sum((1, 2))
        return (raw / math.sqrt(self.k) - self.mean) / self.std

    def sample(self, rng, n, scale=1.0):
        x = scale * rng.standard_normal((n, self.u.shape[1]))
        y = self.targets(x)
        return (torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32)))


# ---------------------------------------------------------------------------------------------
# Models


def init_linear_(weight, bias, fan_in, generator):
    """hypermod's init: weight TruncatedNormal(±2σ), σ = 1/√fan_in; bias U(±1/√fan_in)."""
    s = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        nn.init.trunc_normal_(weight, 0.0, s, -2 * s, 2 * s, generator=generator)
        if bias is not None:
            bias.uniform_(-s, s, generator=generator)


class MLP(nn.Sequential):
    """ReLU MLP widths[0] → … → widths[-1] (identity output)."""

    def __init__(self, widths, generator):
        layers = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            lin = nn.Linear(a, b)
            init_linear_(lin.weight, lin.bias, a, generator)
            layers.append(lin)
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        super().__init__(*layers)

    def forward(self, x):
        return super().forward(x).squeeze(-1)


class BatchedLinear(nn.Module):
    """K independent linear layers: x [K, N, in] → [K, N, out] by one batched GEMM."""

    def __init__(self, k, fan_in, fan_out, generator):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(k, fan_in, fan_out))
        self.bias = nn.Parameter(torch.empty(k, 1, fan_out))
        init_linear_(self.weight, self.bias, fan_in, generator)

    def forward(self, x):
        return torch.baddbmm(self.bias, x, self.weight)


class ModularNet(nn.Module):
    """K̂ modules: projection Û_i (m → b̂, no bias), then a ReLU MLP b̂ → hidden… → 1;
    ŷ = (1/√K̂)·Σ_i out_i. Every module's layers are one batched tensor."""

    def __init__(self, m, k, b, hidden, generator):
        super().__init__()
        self.k = k
        self.proj = nn.Parameter(torch.empty(k, m, b))
        with torch.no_grad():
            self.proj.normal_(0.0, 1.0 / math.sqrt(m), generator=generator)
        widths = [b] + list(hidden)
        self.body = nn.ModuleList(
            BatchedLinear(k, a, c, generator) for a, c in zip(widths[:-1], widths[1:]))
        self.readout = BatchedLinear(k, widths[-1], 1, generator)

    def features(self, x):
        """x [N, m] → each module's last hidden layer [K̂, N, hidden[-1]]."""
        h = torch.matmul(x, self.proj)  # broadcast over modules: [K̂, N, b̂]
        for layer in self.body:
            h = F.relu(layer(h))
        return h

    def forward(self, x):
        out = self.readout(self.features(x))  # [K̂, N, 1]
        return out.sum(0).squeeze(-1) / math.sqrt(self.k)

    @torch.no_grad()
    def normalize_projections(self):
        self.proj.div_(self.proj.norm(dim=1, keepdim=True))


def kernel_init(net, x_train, y_train, steps, lr, batch, ridge, generator, analytic=False):
    """Algorithm 1 on every module at once; returns the mean objective of the last step.
    `analytic`: the closed-form gradient (hypermod's) instead of autograd through Cholesky."""
    n = x_train.shape[0]
    frozen = [p for p in net.parameters() if p is not net.proj]
    for p in frozen:
        p.requires_grad_(False)
    opt = torch.optim.Adam([net.proj], lr=lr, betas=(0.9, 0.999), eps=1e-8)
    net.normalize_projections()
    eye = torch.eye(batch)
    objective = float("nan")
    for _ in range(steps):
        idx = torch.randint(n, (batch,), generator=generator)
        xb, yb = x_train[idx], y_train[idx].view(1, batch, 1)
        a = net.features(xb)  # [K̂, B, h]
        kern = a @ a.transpose(1, 2)  # [K̂, B, B]
        eps = (ridge / batch) * kern.diagonal(dim1=1, dim2=2).sum(-1).detach()
        chol, info = torch.linalg.cholesky_ex(kern + eps[:, None, None] * eye)
        if bool(info.any()):  # a non-positive-definite kernel: skip the step (hypermod skips
            continue          # non-finite updates)
        if analytic:
            # ∂/∂A yᵀ(K + εI)⁻¹y = −2α(αᵀA), α = (K + εI)⁻¹y: a surrogate with α detached has
            # that gradient, without autograd's B×B work through the Cholesky factor.
            with torch.no_grad():
                alpha = torch.cholesky_solve(yb.expand(net.k, batch, 1), chol)
                obj = (yb * alpha).sum((1, 2))
            surrogate = -(a.transpose(1, 2) @ alpha).square().sum()
        else:
            alpha = torch.cholesky_solve(yb.expand(net.k, batch, 1), chol)
            obj = (yb * alpha).sum((1, 2))  # yᵀ(K + εI)⁻¹y per module
            surrogate = obj.sum()
        opt.zero_grad(set_to_none=True)
        surrogate.backward()
        opt.step()
        net.normalize_projections()
        objective = obj.detach().mean().item()
    for p in frozen:
        p.requires_grad_(True)
    return objective


# ---------------------------------------------------------------------------------------------
# One run


@torch.no_grad()
def mse_of(net, x, y):
    return F.mse_loss(net(x), y).item()


def one_run(args, seed, n):
    t0 = time.perf_counter()
    rng_task = np.random.default_rng([seed, 0])
    task = SineTask(rng_task, args.m, args.modules, args.frequencies, args.amplitudes)
    x_train, y_train = task.sample(np.random.default_rng([seed, 1]), n)
    valid = task.sample(np.random.default_rng([seed, 2]), args.n_valid)
    test = task.sample(np.random.default_rng([seed, 3]), args.n_test)
    ood = task.sample(np.random.default_rng([seed, 4]), args.n_test, args.ood_scale)

    gen = torch.Generator().manual_seed(seed)
    if args.method == "monolithic":
        net = MLP([args.m] + args.hidden + [1], gen)
    else:
        k = args.net_modules or 2 * args.modules
        net = ModularNet(args.m, k, 1, args.module_hidden, gen)
    objective = None
    t_setup = time.perf_counter()
    if args.method == "modular_kernel":
        objective = kernel_init(net, x_train, y_train, args.kernel_steps, args.kernel_lr,
                                args.kernel_batch, args.kernel_ridge, gen,
                                analytic=args.kernel_grad == "analytic")
    t_kernel = time.perf_counter()

    if args.weight_decay > 0:
        opt = torch.optim.AdamW(net.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8,
                                weight_decay=args.weight_decay)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8)

    best = {"valid_mse": math.inf, "test_mse": math.nan, "ood_mse": math.nan,
            "selected_step": -1}
    last = {}
    eval_s = [0.0]

    def evaluate(step):
        te = time.perf_counter()
        v, t, o = mse_of(net, *valid), mse_of(net, *test), mse_of(net, *ood)
        last.update(test=t)
        if math.isfinite(v) and v < best["valid_mse"]:
            best.update(valid_mse=v, test_mse=t, ood_mse=o, selected_step=step)
        eval_s[0] += time.perf_counter() - te

    evaluate(0)
    for step in range(1, args.steps + 1):
        idx = torch.randint(n, (args.batch,), generator=gen)
        loss = F.mse_loss(net(x_train[idx]), y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            evaluate(step)
    seconds = time.perf_counter() - t0
    phases = {"setup_s": t_setup - t0, "kernel_init_s": t_kernel - t_setup,
              "eval_s": eval_s[0], "train_s": seconds - (t_kernel - t0) - eval_s[0]}
    rec = {"seed": seed, "n": n, "seconds": seconds, "test_mse": best["test_mse"],
           "ood_mse": best["ood_mse"], "valid_mse": best["valid_mse"],
           "selected_step": best["selected_step"], "final_test_mse": last["test"]}
    if objective is not None:
        rec["kernel_objective"] = objective
    rec.update(phases)
    return rec


# ---------------------------------------------------------------------------------------------


def ints(s):
    return [int(v) for v in s.split(",") if v.strip()]


def floats(s):
    return [float(v) for v in s.split(",") if v.strip()]


def parse_args(argv):
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=DEFAULT_CONFIG)
    known, _ = pre.parse_known_args(argv)
    c = load_config(known.config)
    t, mo, ki, tr, ev = c["task"], c["model"], c["kernel_init"], c["train"], c["eval"]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=DEFAULT_CONFIG,
                   help="hypermod sine config whose values are the defaults (default: %(default)s)")
    p.add_argument("--method", choices=["monolithic", "modular_random", "modular_kernel"],
                   default=mo["method"])
    p.add_argument("--m", type=int, default=t["m"], help="input dimension")
    p.add_argument("--modules", type=int, default=t["modules"], help="true modules K")
    p.add_argument("--frequencies", type=floats, default=t["frequencies"])
    p.add_argument("--amplitudes", type=floats, default=t["amplitudes"])
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--n", type=ints, default=[t["n_train"]],
                   help="training-set sizes, comma-separated, cycled over the runs")
    p.add_argument("--seed0", type=int, default=tr["seed"], help="run i has seed seed0 + i")
    p.add_argument("--steps", type=int, default=tr["steps"])
    p.add_argument("--batch", type=int, default=tr["batch"])
    p.add_argument("--lr", type=float, default=tr["lr"])
    p.add_argument("--weight-decay", type=float, default=tr["weight_decay"])
    p.add_argument("--eval-every", type=int, default=tr["eval_every"])
    p.add_argument("--n-valid", type=int, default=ev["n_valid"])
    p.add_argument("--n-test", type=int, default=ev["n_test"])
    p.add_argument("--ood-scale", type=float, default=ev["ood_scale"])
    p.add_argument("--hidden", type=ints, default=list(mo["hidden"]), help="monolithic widths")
    p.add_argument("--module-hidden", type=ints, default=list(mo["module_hidden"]))
    p.add_argument("--net-modules", type=int, default=mo["modules"], help="K̂; 0 = 2K")
    p.add_argument("--kernel-steps", type=int, default=ki["steps"])
    p.add_argument("--kernel-lr", type=float, default=ki["lr"])
    p.add_argument("--kernel-batch", type=int, default=ki["batch"])
    p.add_argument("--kernel-ridge", type=float, default=ki["ridge"])
    p.add_argument("--kernel-grad", choices=["autograd", "analytic"], default="autograd",
                   help="Algorithm 1's gradient: autograd through cholesky/cholesky_solve (the "
                        "plain recipe, default) or the closed form −2α(αᵀA) hypermod uses")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--json", help="write the report here")
    args = p.parse_args(argv)
    if len(args.frequencies) != len(args.amplitudes):
        p.error("one amplitude per frequency")
    for key, section in [("module_dim", t), ("module_dim", mo)]:
        if section.get(key, 0) not in (0, 1):
            p.error("only module_dim = 1 (b = b̂ = 1) is implemented")
    if t.get("holdout_combination") or t.get("projections", "random") != "random":
        p.error("only projections = random without a held-out combination is implemented")
    return args


def main(argv):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    per_run = []
    t0 = time.perf_counter()
    for i in range(args.runs):
        seed, n = args.seed0 + i, args.n[i % len(args.n)]
        rec = one_run(args, seed, n)
        per_run.append(rec)
        print(f"run {i + 1}/{args.runs}  seed {seed}  n {n}  {rec['seconds']:.2f} s  "
              f"test {rec['test_mse']:.4f}  ood {rec['ood_mse']:.4f}  "
              f"valid {rec['valid_mse']:.4f} @ {rec['selected_step']}  (set-up "
              f"{rec['setup_s']:.2f} s, kernel init {rec['kernel_init_s']:.2f} s, train "
              f"{rec['train_s']:.2f} s, eval {rec['eval_s']:.2f} s)", flush=True)
    total = time.perf_counter() - t0
    report = {"runs": args.runs, "method": args.method, "m": args.m, "steps": args.steps,
              "kernel_steps": args.kernel_steps if args.method == "modular_kernel" else 0,
              "kernel_grad": args.kernel_grad, "n": args.n,
              "seconds_total": total, "runs_per_s": args.runs / total, "per_run": per_run,
              "torch": torch.__version__, "threads": torch.get_num_threads()}
    print(f"{args.method} m = {args.m}: {args.runs} runs in {total:.2f} s, "
          f"{report['runs_per_s']:.4f} runs/s (torch {torch.__version__}, "
          f"{report['threads']} threads)")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
