//! Kernel benchmarks shared by `hypermod bench kernels`, `cargo bench` and the smoke test that
//! runs every case once at tiny sizes so the benchmarks never rot; and the step timer of every
//! experiment's `bench step` ([`time_steps`]).

use serde::Serialize;

use crate::gpu::account::AccountReport;
use crate::gpu::error::Result;
use crate::gpu::{AdapterReport, Device, Dispatch, Tensor, TimingMethod};
use crate::ops::adamw::{AdamW, AdamWConfig};
use crate::ops::elementwise::{activation_backward, activation_tangent_backward, axpy};
use crate::ops::gemm::{gemm, GemmOptions};
use crate::ops::layernorm::{layernorm_backward, layernorm_forward, DEFAULT_EPS};
use crate::ops::layernorm_tangent::{
    layernorm_tangent_backward, layernorm_tangent_forward, LnTangentInputs,
};
use crate::ops::loss::{accuracy, kl_divergence};
use crate::ops::reduce::sum_batch;
use crate::ops::rng::{fill_normal, RngKey};
use crate::ops::Activation;

/// A training step measured: its median wall-clock time and what it records.
#[derive(Clone, Debug, Serialize)]
pub struct StepTimes {
    /// Median seconds per step.
    pub median_s: f64,
    /// The dispatches, FLOPs and bytes of one step, and its GPU estimate.
    pub cost: AccountReport,
}

/// Times `steps` calls of `step(i)` (`i` counting from 0) after `warmup` untimed ones, then runs
/// one more (`i = warmup + steps`) inside a cost account, untimed, so counting never slows a
/// timed step.
pub fn time_steps<E>(
    gpu: &Device,
    warmup: usize,
    steps: usize,
    mut step: impl FnMut(usize) -> std::result::Result<(), E>,
) -> std::result::Result<StepTimes, E> {
    let mut times = Vec::with_capacity(steps);
    for i in 0..warmup + steps {
        let t0 = std::time::Instant::now();
        step(i)?;
        if i >= warmup {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    gpu.open_account();
    let accounted = step(warmup + steps);
    let account = gpu.close_account();
    accounted?;
    Ok(StepTimes {
        median_s: times.get(times.len() / 2).copied().unwrap_or(f64::NAN),
        cost: account.report(),
    })
}

/// Which table of shapes to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchSize {
    /// A few KFLOP per case: checks that every benchmark still runs (tests, CI).
    Tiny,
    /// Small shapes that finish in seconds on a CPU adapter (lavapipe).
    Quick,
    /// The real table, including the Schug student shapes and a 4096³ GEMM. GPU only.
    Full,
    /// The CPU table that `benches/peers/run` compares with numpy/OpenBLAS: 256³–1024³ GEMMs and
    /// the Schug per-task shapes at 16 tasks × 256 shots, width 128.
    Cpu,
}

/// What a case builds: something that owns prepared launches (and their tensors).
trait Launches {
    /// The launches of one timed iteration, in order.
    fn launches(&self) -> Vec<&Dispatch>;
}

impl Launches for Vec<Dispatch> {
    fn launches(&self) -> Vec<&Dispatch> {
        self.iter().collect()
    }
}

impl Launches for AdamW {
    fn launches(&self) -> Vec<&Dispatch> {
        self.step_dispatches().to_vec()
    }
}

/// Builds a case's tensors and prepared launches on a device.
type BuildFn = Box<dyn Fn(&Device) -> Result<Box<dyn Launches>>>;

/// One benchmark: a kernel family at one shape, built on demand.
pub struct BenchCase {
    /// Kernel family and variant.
    pub kernel: String,
    /// Shape in words.
    pub shape: String,
    build: BuildFn,
}

/// A timed case.
#[derive(Clone, Debug, Serialize)]
pub struct BenchRecord {
    /// Kernel family and variant.
    pub kernel: String,
    /// Shape in words.
    pub shape: String,
    /// Median time per launch sequence, ms.
    pub ms: f64,
    /// Fastest iteration, ms.
    pub min_ms: f64,
    /// Modelled floating-point work / median time.
    pub gflops: f64,
    /// Modelled compulsory memory traffic / median time.
    pub gbs: f64,
    /// GPU timestamps or wall clock.
    pub method: TimingMethod,
    /// Timed iterations.
    pub iters: usize,
}

/// A whole benchmark run, as written by `--json`.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// hypermod version.
    pub version: &'static str,
    /// The adapter measured.
    pub adapter: AdapterReport,
    /// Table size used.
    pub size: BenchSize,
    /// One record per kernel × shape.
    pub records: Vec<BenchRecord>,
}

fn case<L: Launches + 'static>(
    kernel: &str,
    shape: String,
    build: impl Fn(&Device) -> Result<L> + 'static,
) -> BenchCase {
    BenchCase {
        kernel: kernel.to_string(),
        shape,
        build: Box::new(move |gpu| Ok(Box::new(build(gpu)?) as Box<dyn Launches>)),
    }
}

/// A batched GEMM case: `batch × (m×k)·(k×n)`, B shared when `shared_b`.
fn gemm_case(
    name: &str,
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    shared_b: bool,
    opts: GemmOptions,
) -> BenchCase {
    let shape = format!(
        "{batch} × ({m}×{k}){}·({k}×{n}){}{}",
        if opts.trans_a { "ᵀ" } else { "" },
        if shared_b { " shared" } else { "" },
        if opts.activation != Activation::Identity {
            format!(" +bias {:?}", opts.activation)
        } else {
            String::new()
        }
    );
    case(name, shape, move |gpu| {
        let (ar, ac) = if opts.trans_a { (k, m) } else { (m, k) };
        let a = gpu.zeros(batch, ar, ac)?;
        let b = if shared_b {
            gpu.zeros(1, k, n)?.broadcast(batch)?
        } else {
            gpu.zeros(batch, k, n)?
        };
        let c = gpu.zeros(batch, m, n)?;
        let bias = gpu.zeros(batch, 1, n)?;
        let with_bias = opts.activation != Activation::Identity;
        Ok(vec![gemm(
            gpu,
            &a,
            &b,
            with_bias.then_some(&bias),
            &c,
            &opts,
        )?])
    })
}

/// The benchmark table for a size.
pub fn kernel_cases(size: BenchSize) -> Vec<BenchCase> {
    let plain = GemmOptions::default();
    let relu = GemmOptions {
        activation: Activation::Relu,
        ..plain
    };
    let t_a = GemmOptions {
        trans_a: true,
        ..plain
    };
    // (square sizes, per-task MLP: tasks, samples, width, hnet: tasks, modules, generated params)
    type Dims = (usize, usize, usize);
    let (squares, mlp, hnet): (&[usize], Dims, Dims) = match size {
        BenchSize::Tiny => (&[17], (3, 9, 7), (3, 2, 33)),
        BenchSize::Quick => (&[128, 256], (16, 64, 32), (16, 8, 4096)),
        BenchSize::Full => (&[1024, 2048, 4096], (128, 256, 128), (128, 8, 16384)),
        BenchSize::Cpu => (&[256, 512, 1024], (16, 256, 128), (16, 4, 16384)),
    };
    let mut cases = Vec::new();
    for &s in squares {
        cases.push(gemm_case("gemm", 1, s, s, s, false, plain));
    }
    let (tasks, samples, width) = mlp;
    // Schug students: per-task hidden layer forward (samples × width)·(width × width) + bias + ReLU,
    // and its weight gradient Xᵀ·dY.
    cases.push(gemm_case(
        "gemm/task-mlp-fwd",
        tasks,
        samples,
        width,
        width,
        false,
        relu,
    ));
    cases.push(gemm_case(
        "gemm/task-mlp-dW",
        tasks,
        width,
        width,
        samples,
        false,
        t_a,
    ));
    cases.push(gemm_case(
        "gemm/shared-weight-fwd",
        tasks,
        samples,
        width,
        width,
        true,
        plain,
    ));
    let (tasks, modules, params) = hnet;
    // Hypernetwork weight generation W = E·Θ: (tasks × modules)·(modules × generated params).
    cases.push(gemm_case(
        "gemm/hnet-generate",
        1,
        tasks,
        params,
        modules,
        false,
        plain,
    ));
    // Meta-gradient of the hypernetwork bank: sum of per-task gradients, then the outer AdamW
    // step (clip + update) over the bank's parameters.
    cases.push(case(
        "reduce/sum-batch",
        format!("{tasks} × {modules}×{params} → 1"),
        move |gpu| {
            let (x, y) = (
                gpu.zeros(tasks, modules, params)?,
                gpu.zeros(1, modules, params)?,
            );
            Ok(vec![sum_batch(gpu, &x, &y, 1.0, 0.0)?])
        },
    ));
    cases.push(case(
        "adamw/step+clip",
        format!("1 × {modules}×{params}"),
        move |gpu| {
            let (p, g) = (
                gpu.zeros(1, modules, params)?,
                gpu.zeros(1, modules, params)?,
            );
            let cfg = AdamWConfig {
                max_grad_norm: 1.0,
                ..AdamWConfig::default()
            };
            AdamW::new(gpu, &p, &g, cfg)
        },
    ));
    let (tasks, samples, width) = mlp;
    cases.extend(pointwise_cases(tasks, samples, width));
    cases
}

/// The bandwidth-bound families at the per-task MLP shape: tasks × samples × width activations
/// (classes = 8 for the losses, as in the hyperteacher).
fn pointwise_cases(tasks: usize, samples: usize, width: usize) -> Vec<BenchCase> {
    let act = format!("{tasks} × {samples}×{width}");
    let logits = format!("{tasks} × {samples}×8");
    let zeros = move |gpu: &Device, cols: usize| gpu.zeros(tasks, samples, cols);
    vec![
        case("elementwise/act-bwd-relu", act.clone(), move |gpu| {
            let (dy, y, dx) = (zeros(gpu, width)?, zeros(gpu, width)?, zeros(gpu, width)?);
            Ok(vec![activation_backward(
                gpu,
                &dy,
                &y,
                &dx,
                Activation::Relu,
            )?])
        }),
        case("elementwise/axpy", act.clone(), move |gpu| {
            let (x, y) = (zeros(gpu, width)?, zeros(gpu, width)?);
            Ok(vec![axpy(gpu, 0.5, &x, &y)?])
        }),
        case("loss/kl+grad", logits.clone(), move |gpu| {
            let (z, y, g) = (zeros(gpu, 8)?, zeros(gpu, 8)?, zeros(gpu, 8)?);
            let loss = gpu.zeros(tasks, 1, 1)?;
            Ok(vec![kl_divergence(gpu, &z, &y, &loss, Some(&g), 1.0)?])
        }),
        case("loss/accuracy", logits, move |gpu| {
            let (z, y, acc) = (zeros(gpu, 8)?, zeros(gpu, 8)?, gpu.zeros(tasks, 1, 1)?);
            Ok(vec![accuracy(gpu, &z, &y, &acc)?])
        }),
        case("rng/normal", act.clone(), move |gpu| {
            let t = zeros(gpu, width)?;
            Ok(vec![
                fill_normal(gpu, &t, RngKey::new(0, 0), 0.0, 1.0)?.into_dispatch()
            ])
        }),
        case("layernorm/fwd", act.clone(), move |gpu| {
            let (x, y) = (zeros(gpu, width)?, zeros(gpu, width)?);
            let shared = gpu.zeros(1, 1, width)?.broadcast(tasks)?;
            let (mean, rstd) = (zeros(gpu, 1)?, zeros(gpu, 1)?);
            let ln = layernorm_forward(
                gpu,
                &x,
                Some(&shared),
                Some(&shared),
                &y,
                &mean,
                &rstd,
                DEFAULT_EPS,
            )?;
            Ok(vec![ln])
        }),
        case("layernorm/bwd", act.clone(), move |gpu| {
            let (x, dy, dx) = (zeros(gpu, width)?, zeros(gpu, width)?, zeros(gpu, width)?);
            let g = gpu.zeros(1, 1, width)?.broadcast(tasks)?;
            let (mean, rstd) = (zeros(gpu, 1)?, zeros(gpu, 1)?);
            let (dg, db) = (gpu.zeros(tasks, 1, width)?, gpu.zeros(tasks, 1, width)?);
            layernorm_backward(
                gpu,
                &dy,
                &x,
                Some(&g),
                &mean,
                &rstd,
                &dx,
                Some(&dg),
                Some(&db),
            )
        }),
        // The tangent passes of second-order meta-gradients (hnet_deepmlp's DeepBank).
        case("layernorm/tangent-fwd", act.clone(), move |gpu| {
            let t = LnTangentScratch::new(gpu, &zeros, tasks, width)?;
            Ok(vec![layernorm_tangent_forward(gpu, &t.inputs(), &t.out)?])
        }),
        case("layernorm/tangent-bwd", act.clone(), move |gpu| {
            let t = LnTangentScratch::new(gpu, &zeros, tasks, width)?;
            let dg = gpu.zeros(tasks, 1, width)?;
            let grads = (&t.dy, &t.dy_dot);
            layernorm_tangent_backward(gpu, &t.inputs(), grads, &t.out, Some(&dg))
        }),
        case("elementwise/act-tangent-elu", act, move |gpu| {
            let [dy_dot, y, y_dot, dy, out] = [0; 5].map(|_| zeros(gpu, width));
            let act = Activation::Elu;
            Ok(vec![activation_tangent_backward(
                gpu,
                &dy_dot?,
                (&y?, &y_dot?),
                &dy?,
                &out?,
                act,
            )?])
        }),
    ]
}

/// The operands of a LayerNorm tangent benchmark: `[tasks × samples × width]` activations,
/// per-item γ, row statistics.
struct LnTangentScratch {
    x: Tensor,
    x_dot: Tensor,
    gamma: Tensor,
    mean: Tensor,
    rstd: Tensor,
    tstats: Tensor,
    dy: Tensor,
    dy_dot: Tensor,
    out: Tensor,
}

impl LnTangentScratch {
    fn new(
        gpu: &Device,
        zeros: &dyn Fn(&Device, usize) -> Result<Tensor>,
        tasks: usize,
        width: usize,
    ) -> Result<LnTangentScratch> {
        Ok(LnTangentScratch {
            x: zeros(gpu, width)?,
            x_dot: zeros(gpu, width)?,
            gamma: gpu.zeros(tasks, 1, width)?,
            mean: zeros(gpu, 1)?,
            rstd: zeros(gpu, 1)?,
            tstats: zeros(gpu, 2)?,
            dy: zeros(gpu, width)?,
            dy_dot: zeros(gpu, width)?,
            out: zeros(gpu, width)?,
        })
    }

    fn inputs(&self) -> LnTangentInputs<'_> {
        LnTangentInputs {
            x: &self.x,
            x_dot: &self.x_dot,
            gamma: Some(&self.gamma),
            mean: &self.mean,
            rstd: &self.rstd,
            tstats: &self.tstats,
        }
    }
}

/// Runs cases with `warmup` untimed and `iters` timed iterations each; `on_done` sees each record.
pub fn run_cases(
    gpu: &Device,
    cases: &[BenchCase],
    warmup: usize,
    iters: usize,
    mut on_done: impl FnMut(&BenchRecord),
) -> Result<Vec<BenchRecord>> {
    let mut out = Vec::with_capacity(cases.len());
    for c in cases {
        let built = (c.build)(gpu)?;
        let ds = built.launches();
        let timing = gpu.time(&ds, warmup, iters)?;
        let (flops, bytes) = ds.iter().fold((0.0, 0.0), |(f, b), d| {
            (f + d.cost().flops, b + d.cost().bytes)
        });
        let secs = timing.median_ms * 1e-3;
        let rec = BenchRecord {
            kernel: c.kernel.clone(),
            shape: c.shape.clone(),
            ms: timing.median_ms,
            min_ms: timing.min_ms,
            gflops: if secs > 0.0 { flops / secs * 1e-9 } else { 0.0 },
            gbs: if secs > 0.0 { bytes / secs * 1e-9 } else { 0.0 },
            method: timing.method,
            iters: timing.iters,
        };
        on_done(&rec);
        out.push(rec);
    }
    Ok(out)
}

/// One formatted table row (also used for the header with `None`).
pub fn table_row(r: Option<&BenchRecord>) -> String {
    match r {
        None => format!(
            "{:<24} {:<44} {:>10} {:>10} {:>9}",
            "kernel", "shape", "ms", "GFLOP/s", "GB/s"
        ),
        Some(r) => format!(
            "{:<24} {:<44} {:>10.4} {:>10.2} {:>9.2}",
            r.kernel, r.shape, r.ms, r.gflops, r.gbs
        ),
    }
}
