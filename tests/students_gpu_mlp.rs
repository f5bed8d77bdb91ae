//! GPU programs of the MLP students (ANIL, MAML) vs their CPU twins, task by task: logits against
//! the twin forward, `dtask` against the twin's per-task gradient, `dmeta` against the twin's
//! gradient summed over the tasks; plus the inner-loop program (no `dmeta`), strided / offset
//! buffers, and shape errors.

mod common;

use hypermod::gpu::{Device, Tensor};
use hypermod::students::gpu::{GpuStudent, StudentBuffers};
use hypermod::students::{Anil, Maml, ParamSpec, Student};
use rand::rngs::ChaCha8Rng;

/// f32 unit roundoff.
const U: f64 = f32::EPSILON as f64 / 2.0;

/// Packed random parameters for `specs`: weights uniform · 1/√fan_in (activations stay O(1)
/// through the layers, as with the real init), biases uniform · 0.5.
fn params(rng: &mut ChaCha8Rng, specs: &[ParamSpec]) -> Vec<f32> {
    specs
        .iter()
        .flat_map(|s| {
            let scale = if s.shape.len() == 2 {
                1.0 / (s.shape[0] as f32).sqrt()
            } else {
                0.5
            };
            common::uniform(rng, s.numel())
                .into_iter()
                .map(move |v| v * scale)
        })
        .collect()
}

fn abs(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| x.abs()).collect()
}

/// One comparison case.
struct Case {
    tasks: usize,
    n: usize,
    /// x, task and dtask as NaN-padded strided views at an offset (see `common::padded`).
    padded: bool,
}

/// Uploads `host` as `[batch × rows × cols]`, contiguous or NaN-padded.
fn put(gpu: &Device, host: &[f32], batch: usize, rows: usize, cols: usize, pad: bool) -> Tensor {
    if pad {
        common::padded(gpu, host, batch, rows, cols)
    } else {
        gpu.upload(host, batch, rows, cols).unwrap()
    }
}

/// Runs the GPU program of `s` on random data and checks it against the twin.
fn check<S: GpuStudent>(gpu: &Device, s: &S, rng: &mut ChaCha8Rng, c: &Case, ctx: &str) {
    let layout = s.param_layout();
    let (ml, tl) = (layout.meta_len(), layout.task_len());
    let (din, dout) = (s.input_dim(), s.output_dim());
    let (tasks, n) = (c.tasks, c.n);
    let meta = params(rng, &layout.meta);
    let task: Vec<f32> = (0..tasks).flat_map(|_| params(rng, &layout.task)).collect();
    let x = common::uniform(rng, tasks * n * din);
    let dl = common::uniform(rng, tasks * n * dout);

    let meta_t = gpu.upload(&meta, 1, 1, ml).unwrap();
    let task_t = put(gpu, &task, tasks, 1, tl, c.padded);
    let x_t = put(gpu, &x, tasks, n, din, c.padded);
    let logits_t = gpu.zeros(tasks, n, dout).unwrap();
    let dl_t = gpu.upload(&dl, tasks, n, dout).unwrap();
    let dtask_t = put(gpu, &vec![f32::NAN; tasks * tl], tasks, 1, tl, c.padded);
    let dmeta_t = gpu.upload(&vec![f32::NAN; ml], 1, 1, ml).unwrap();
    let bufs = StudentBuffers {
        meta: &meta_t,
        task: &task_t,
        x: &x_t,
        logits: &logits_t,
        dlogits: &dl_t,
        dtask: &dtask_t,
        dmeta: Some(&dmeta_t),
    };
    let prog = s.program(gpu, &bufs).unwrap();
    let all: Vec<_> = prog.forward.iter().chain(&prog.backward).collect();
    gpu.run(&all).unwrap();
    let (logits, dtask, dmeta) = (
        gpu.read(&logits_t).unwrap(),
        gpu.read(&dtask_t).unwrap(),
        gpu.read(&dmeta_t).unwrap(),
    );
    if c.padded {
        common::assert_gaps_untouched(gpu, &dtask_t, &format!("{ctx}: dtask"));
    }

    // Twins in f64 on the same (exactly widened) values, and on their absolute values: the
    // latter bound Σ|terms| of every dot product along the way (ReLU of a non-negative value
    // is the identity, and its derivative 1 is the largest mask), the scale of the f32
    // rounding error.
    let (meta64, task64, x64, dl64) = (
        common::widen(&meta),
        common::widen(&task),
        common::widen(&x),
        common::widen(&dl),
    );
    let mut want = (Vec::new(), Vec::new(), vec![0.0; ml]);
    let mut mag = (Vec::new(), Vec::new(), vec![0.0; ml]);
    for t in 0..tasks {
        let tp = &task64[t * tl..(t + 1) * tl];
        let xt = &x64[t * n * din..(t + 1) * n * din];
        let dlt = &dl64[t * n * dout..(t + 1) * n * dout];
        want.0.extend(s.forward(&meta64, tp, xt));
        let (dm, dt) = s.backward(&meta64, tp, xt, dlt);
        want.1.extend(dt);
        want.2.iter_mut().zip(&dm).for_each(|(a, b)| *a += b);
        let (am, at, ax, adl) = (abs(&meta64), abs(tp), abs(xt), abs(dlt));
        mag.0.extend(s.forward(&am, &at, &ax));
        let (dm, dt) = s.backward(&am, &at, &ax, &adl);
        mag.1.extend(dt);
        mag.2.iter_mut().zip(&dm).for_each(|(a, b)| *a += b.abs());
    }
    // Tolerance: a length-K f32 dot product errs by at most K·u·Σ|terms| (Higham's γ_K); the
    // backward chains at most 2·layers + 1 GEMMs, each adding its own such error scaled by the
    // magnitudes downstream, which the absolute-value twin bounds. K is the largest inner
    // dimension: a width, or the tasks·n rows a weight gradient sums over. The factor 2 covers
    // the bias/ReLU epilogue roundings. ReLU kinks: a pre-activation within this error of 0 has
    // negligible probability with continuous random data.
    // Every layer has a weight and a bias; ANIL's meta group holds all of them (head via
    // `head_init.*`), MAML's task group too.
    let layers = layout.meta.len().max(layout.task.len()) / 2;
    let k = [din, dout, tasks * n]
        .into_iter()
        .chain(layout.task.iter().chain(&layout.meta).map(|p| p.shape[0]))
        .max()
        .unwrap();
    let factor = 2.0 * (2 * layers + 1) as f64 * k as f64 * U;
    let tol = |m: &[f64]| {
        let m = m.to_vec();
        move |i: usize| factor * m[i] + 1e-30
    };
    common::assert_close(&logits, &want.0, tol(&mag.0), &format!("{ctx}: logits"));
    common::assert_close(&dtask, &want.1, tol(&mag.1), &format!("{ctx}: dtask"));
    common::assert_close(&dmeta, &want.2, tol(&mag.2), &format!("{ctx}: dmeta"));

    // The inner-loop program (no dmeta) computes the same dtask with the same launches.
    let dtask2_t = gpu.zeros(tasks, 1, tl).unwrap();
    let inner = StudentBuffers {
        dtask: &dtask2_t,
        dmeta: None,
        ..bufs
    };
    let prog = s.program(gpu, &inner).unwrap();
    let all: Vec<_> = prog.forward.iter().chain(&prog.backward).collect();
    gpu.run(&all).unwrap();
    assert_eq!(
        gpu.read(&dtask2_t).unwrap(),
        dtask,
        "{ctx}: inner-loop dtask differs"
    );
}

/// Tiny sizes (input 3, width 5, output 4, 1..3 hidden layers) and the medium 16 → 64 → 64 → 8,
/// for tasks ∈ {1, 3} and n ∈ {1, 7}, contiguous and padded.
fn sizes() -> Vec<(usize, usize, usize, usize)> {
    vec![(3, 5, 4, 1), (3, 5, 4, 2), (3, 5, 4, 3), (16, 64, 8, 2)]
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for tasks in [1, 3] {
        for n in [1, 7] {
            v.push(Case {
                tasks,
                n,
                padded: (tasks + n) % 4 == 0,
            });
        }
    }
    v
}

#[test]
fn anil_program_matches_twin() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(41);
    for (input_dim, hidden_dim, output_dim, num_hidden) in sizes() {
        let s = Anil {
            input_dim,
            hidden_dim,
            output_dim,
            num_hidden,
        };
        for c in cases() {
            let ctx = format!("{s:?} tasks {} n {} padded {}", c.tasks, c.n, c.padded);
            check(gpu, &s, &mut rng, &c, &ctx);
        }
    }
}

#[test]
fn maml_program_matches_twin() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(42);
    for (input_dim, hidden_dim, output_dim, num_hidden) in sizes() {
        let s = Maml {
            input_dim,
            hidden_dim,
            output_dim,
            num_hidden,
        };
        for c in cases() {
            let ctx = format!("{s:?} tasks {} n {} padded {}", c.tasks, c.n, c.padded);
            check(gpu, &s, &mut rng, &c, &ctx);
        }
    }
}

#[test]
fn program_rejects_mismatched_buffers_naming_shapes() {
    let gpu = gpu_or_skip!();
    let s = Anil {
        input_dim: 3,
        hidden_dim: 5,
        output_dim: 4,
        num_hidden: 2,
    };
    let layout = s.param_layout();
    let (tasks, n) = (2, 3);
    let meta = gpu.zeros(1, 1, layout.meta_len()).unwrap();
    let task = gpu.zeros(tasks, 1, layout.task_len()).unwrap();
    let x = gpu.zeros(tasks, n, 4).unwrap(); // input_dim is 3
    let logits = gpu.zeros(tasks, n, 4).unwrap();
    let dl = gpu.zeros(tasks, n, 4).unwrap();
    let dtask = gpu.zeros(tasks, 1, layout.task_len()).unwrap();
    let bufs = StudentBuffers {
        meta: &meta,
        task: &task,
        x: &x,
        logits: &logits,
        dlogits: &dl,
        dtask: &dtask,
        dmeta: None,
    };
    let err = s.program(gpu, &bufs).unwrap_err().to_string();
    assert!(
        err.contains("x must be [2×3×3]") && err.contains("[2×3×4]"),
        "{err}"
    );
    let m = Maml {
        input_dim: 4,
        hidden_dim: 5,
        output_dim: 3,
        num_hidden: 1,
    };
    let err = m.program(gpu, &bufs).unwrap_err().to_string();
    assert!(err.contains("meta must be"), "{err}");
}
