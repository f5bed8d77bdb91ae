//! Samples of the sine-wave modular regression task of Boopathy et al. (`shaders/sine.wgsl`),
//! drawn on the device for a batch of independent runs.
//!
//! Run `b`'s training set is implicit: its sample `idx` is `x = σ·z`, `z_j` the standard normal
//! of element `idx·m + j` of the run's data stream (Philox keyed by `seeds[b]`, the per-item
//! counter layout of [`crate::ops::rng`]), so a set of any size costs no memory and runs with
//! different training-set sizes `n` share one batch. [`Rows::Pick`] draws each row's index
//! uniformly from `[0, n_b)` (a minibatch with replacement, `bits mod n`), [`Rows::Fixed`] takes
//! `row0 + row` (an evaluation set, in chunks).
//!
//! The targets are `y = ((1/√K)·Σ_i Σ_l a_il·sin(ω_il·u_iᵀx + ψ_il) − mean)·inv_std` with the
//! run's task tensor (layout: [`SineShape::task_len`] and the shader's header). [`Fold`] keeps a combination
//! of module inputs out of the training data or samples it alone, by reflections in `u_0`, `u_1`.
//!
//! The CPU twin [`sample_cpu`] gives the same `x` bit for bit (Philox and the polynomial normal
//! are exact) and `y` up to `sin` rounding.

use crate::gpu::error::{arg_err, shape_err, Result};
use crate::gpu::{grid_1d, Access, Cost, Device, KernelSpec, Shader, Tensor};
use crate::ops::rng::{normal_table, random_bits, ItemSeeds, RngDispatch, RngKey};
use crate::ops::to_u32;

mod native;

/// `shaders/sine.wgsl` after the shared Philox and normal.
pub static SHADER: Shader = Shader {
    name: "sine",
    source: concat!(
        include_str!("../../shaders/philox.wgsl"),
        include_str!("../../shaders/normal.wgsl"),
        include_str!("../../shaders/sine.wgsl")
    ),
    native: native::run,
    params: <Params as crate::gpu::Uniform>::LAYOUT,
};

/// Invocations per workgroup; each writes one row.
const WG: u32 = 64;

crate::uniform! {
    #[derive(Debug)]
    pub(crate) struct Params {
        pub(crate) batch: u32,
        pub(crate) rows: u32,
        pub(crate) m: u32,
        pub(crate) modules: u32,
        pub(crate) comps: u32,
        pub(crate) x_rep: u32,
        pub(crate) y_rep: u32,
        pub(crate) task_stride: u32,
        pub(crate) row0: u32,
        pub(crate) zero: u32,
        pub(crate) data_lo: u32,
        pub(crate) data_hi: u32,
        pub(crate) pick_lo: u32,
        pub(crate) pick_hi: u32,
        pub(crate) x_off: u32,
        pub(crate) x_stride: u32,
        pub(crate) y_off: u32,
        pub(crate) y_stride: u32,
        pub(crate) task_off: u32,
        pub(crate) sigma: f32,
        pub(crate) dim: u32,
        pub(crate) _pad: [u32; 3],
    }
}

/// Sizes of the task: input dimension `m`, true modules `K` of input dimension `b`, sine
/// components `L` per module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SineShape {
    /// Input dimension m.
    pub m: usize,
    /// True modules K.
    pub modules: usize,
    /// Each module's input dimension b (1 ..= [`MAX_MODULE_DIM`]).
    pub dim: usize,
    /// Sine components L per module.
    pub comps: usize,
}

/// Largest module input dimension the kernel handles (`MAX_B` in the shader).
pub const MAX_MODULE_DIM: usize = 8;

impl SineShape {
    /// Floats of one run's task tensor: `[n, mean, inv_std, 0]`, the K·b projection rows `u_ik`
    /// (module-major, rows of m), then `(a, ω, ψ, w_1..w_b)` per module and component.
    pub fn task_len(self) -> usize {
        4 + self.modules * self.dim * self.m + (3 + self.dim) * self.modules * self.comps
    }

    /// Offset of module `i`'s component `l` in the task tensor.
    pub fn comp_at(self, i: usize, l: usize) -> usize {
        4 + self.modules * self.dim * self.m + (3 + self.dim) * (i * self.comps + l)
    }
}

/// Which samples the rows are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows {
    /// Each row a uniform draw from the run's `n` training samples; `stream` (the pick stream)
    /// changes every step (`set_stream`).
    Pick {
        /// Counter words 2–3 of the index draw.
        stream: u64,
    },
    /// Rows `row0 .. row0 + rows` of the stream (an evaluation set, chunk by chunk).
    Fixed {
        /// First sample index.
        row0: usize,
    },
}

/// Where the samples may lie, in the plane of the first two module inputs `(z_0, z_1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fold {
    /// Anywhere.
    None,
    /// Never in `{z_0 > 0, z_1 > 0}` (such samples are reflected in `u_0`): training without
    /// that combination of module inputs.
    Exclude,
    /// Only in `{z_0 > 0, z_1 > 0}` (reflections in `u_0`, then `u_1`; needs `u_0 ⟂ u_1`): the
    /// held-out combination.
    Inside,
}

impl Fold {
    fn code(self) -> u32 {
        match self {
            Fold::None => 0,
            Fold::Exclude => 1,
            Fold::Inside => 2,
        }
    }
}

/// One sampling launch's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleSpec {
    /// Task sizes.
    pub shape: SineShape,
    /// Drawn or fixed rows.
    pub rows: Rows,
    /// Region of the samples.
    pub fold: Fold,
    /// Input scale σ (1 in distribution; > 1 for the wide OOD set).
    pub sigma: f32,
    /// The set's data stream (training, validation, test, ... each its own).
    pub data_stream: u64,
}

/// A prepared sampling launch; its `set_stream` replays it with new picks.
pub type SineSample = RngDispatch;

/// Prepares rows of `R` runs: `task [R×1×task_len]`, `seeds` (R), `x [R·x_rep × N × m]` and
/// `y [R·y_rep × N × 1]` (contiguous items; each run's `x_rep` copies of x, `y_rep` of y, are
/// consecutive items).
pub fn sample(
    gpu: &Device,
    spec: &SampleSpec,
    task: &Tensor,
    seeds: &ItemSeeds,
    x: &Tensor,
    y: &Tensor,
) -> Result<SineSample> {
    const OP: &str = "sine sample";
    let s = spec.shape;
    let runs = seeds.batch();
    let rows = x.rows();
    if s.m == 0 || s.modules == 0 || s.comps == 0 || !(1..=MAX_MODULE_DIM).contains(&s.dim) {
        return Err(arg_err(
            OP,
            format!("task shape {s:?} needs m, K, L ≥ 1 and 1 ≤ b ≤ {MAX_MODULE_DIM}"),
        ));
    }
    if matches!(spec.fold, Fold::Exclude | Fold::Inside) && s.modules < 2 {
        return Err(arg_err(OP, "a held-out combination needs ≥ 2 modules"));
    }
    if !spec.sigma.is_finite() || spec.sigma <= 0.0 {
        return Err(arg_err(OP, format!("σ = {} must be > 0", spec.sigma)));
    }
    let reps = (x.batch() / runs.max(1), y.batch() / runs.max(1));
    let shapes_ok = task.batch() == runs
        && task.rows() == 1
        && task.cols() == s.task_len()
        && x.batch() == runs * reps.0
        && reps.0 > 0
        && x.cols() == s.m
        && y.batch() == runs * reps.1
        && reps.1 > 0
        && (y.rows(), y.cols()) == (rows, 1)
        && x.is_contiguous()
        && y.is_contiguous();
    if !shapes_ok {
        return Err(shape_err(
            OP,
            format!(
                "{runs} runs of {s:?} need task [{runs}×1×{}], contiguous x [{runs}·r×N×{}] and \
                 y [{runs}·r×N×1]; got task {}, x {}, y {}",
                s.task_len(),
                s.m,
                task.shape_str(),
                x.shape_str(),
                y.shape_str()
            ),
        ));
    }
    let (pick, row0, pick_stream) = match spec.rows {
        Rows::Pick { stream } => (true, 0, stream),
        Rows::Fixed { row0 } => (false, row0, 0),
    };
    // Every element index idx·m + j must fit the 32-bit counter.
    let last = (row0 + rows) as u64 * s.m as u64;
    if last > u32::MAX as u64 {
        return Err(shape_err(
            OP,
            format!(
                "rows up to {} × m = {} exceed 2³² elements",
                row0 + rows,
                s.m
            ),
        ));
    }
    let params = Params {
        batch: to_u32(OP, "runs", runs)?,
        rows: to_u32(OP, "rows", rows)?,
        m: to_u32(OP, "m", s.m)?,
        modules: to_u32(OP, "modules", s.modules)?,
        comps: to_u32(OP, "components", s.comps)?,
        x_rep: to_u32(OP, "x copies", reps.0)?,
        y_rep: to_u32(OP, "y copies", reps.1)?,
        task_stride: to_u32(OP, "task stride", task.batch_stride())?,
        row0: to_u32(OP, "row0", row0)?,
        zero: 0,
        data_lo: spec.data_stream as u32,
        data_hi: (spec.data_stream >> 32) as u32,
        pick_lo: pick_stream as u32,
        pick_hi: (pick_stream >> 32) as u32,
        x_off: to_u32(OP, "x offset", x.offset())?,
        x_stride: to_u32(OP, "x stride", x.batch_stride())?,
        y_off: to_u32(OP, "y offset", y.offset())?,
        y_stride: to_u32(OP, "y stride", y.batch_stride())?,
        task_off: to_u32(OP, "task offset", task.offset())?,
        sigma: spec.sigma,
        dim: to_u32(OP, "b", s.dim)?,
        _pad: [0; 3],
    };
    let table = normal_table(gpu)?;
    let constants = [
        ("WG", WG as f64),
        ("PICK", if pick { 1.0 } else { 0.0 }),
        ("FOLD", spec.fold.code() as f64),
    ];
    let kernel = KernelSpec {
        shader: &SHADER,
        entry: "sample",
        constants: &constants,
        access: &[
            Access::Read,
            Access::Read,
            Access::Read,
            Access::ReadWrite,
            Access::ReadWrite,
        ],
    };
    let per_row =
        (s.m * (20 + 2 * s.modules * s.dim) + (30 + 2 * s.dim) * s.modules * s.comps) as f64;
    let n_rows = (runs * rows) as f64;
    let cost = Cost {
        flops: n_rows * per_row,
        bytes: 4.0 * n_rows * (s.m * reps.0 + reps.1) as f64,
    };
    let dispatch = gpu.dispatch(
        &kernel,
        &params,
        &[task, &table, seeds.tensor(), x, y],
        grid_1d((runs * rows).div_ceil(WG as usize)),
        cost,
    )?;
    Ok(RngDispatch::new(
        dispatch,
        &params,
        std::mem::offset_of!(Params, pick_lo),
    ))
}

/// The sample index of row `row` of a run with seed `seed` and training-set size `n`.
pub fn sample_index(rows: Rows, seed: u64, n: usize, row: usize) -> usize {
    match rows {
        Rows::Pick { stream } => random_bits(RngKey::new(seed, stream), row as u32) as usize % n,
        Rows::Fixed { row0 } => row0 + row,
    }
}

/// CPU twin of [`sample`] for one run: `rows` samples from `task` (one run's task tensor) and
/// `seed`; returns `(x [rows × m], y [rows])`, y in f64; x exactly as the device draws it
/// unless a fold reflected the sample (then within rounding).
pub fn sample_cpu(spec: &SampleSpec, task: &[f32], seed: u64, rows: usize) -> (Vec<f32>, Vec<f64>) {
    let s = spec.shape;
    let n = task[0] as usize;
    let key = RngKey::new(seed, spec.data_stream);
    let u = |k: usize| &task[4 + k * s.m..4 + (k + 1) * s.m];
    let dot = |k: usize, v: &[f32]| -> f64 {
        u(k).iter().zip(v).map(|(&a, &b)| a as f64 * b as f64).sum()
    };
    let reflect = |k: usize, v: &mut [f32], zk: f64| {
        for (vj, &uj) in v.iter_mut().zip(u(k)) {
            *vj = (*vj as f64 - 2.0 * zk * uj as f64) as f32;
        }
    };
    let (mut xs, mut ys) = (Vec::with_capacity(rows * s.m), Vec::with_capacity(rows));
    for r in 0..rows {
        let idx = sample_index(spec.rows, seed, n, r);
        let mut v: Vec<f32> = (0..s.m)
            .map(|j| {
                let bits = random_bits(key, (idx * s.m + j) as u32);
                spec.sigma * crate::ops::rng::normal_icdf(bits)
            })
            .collect();
        // z_0 and z_1: the first inputs of modules 0 and 1 (projection rows 0 and b).
        let second = s.dim;
        match spec.fold {
            Fold::None => {}
            Fold::Exclude => {
                let z0 = dot(0, &v);
                if z0 > 0.0 && dot(second, &v) > 0.0 {
                    reflect(0, &mut v, z0);
                }
            }
            Fold::Inside => {
                let z0 = dot(0, &v);
                if z0 < 0.0 {
                    reflect(0, &mut v, z0);
                }
                let z1 = dot(second, &v);
                if z1 < 0.0 {
                    reflect(second, &mut v, z1);
                }
            }
        }
        let mut sum = 0.0;
        for i in 0..s.modules {
            let z: Vec<f64> = (0..s.dim).map(|k| dot(i * s.dim + k, &v)).collect();
            for l in 0..s.comps {
                let c = &task[s.comp_at(i, l)..];
                let arg: f64 = z.iter().zip(&c[3..]).map(|(&zk, &w)| zk * w as f64).sum();
                sum += c[0] as f64 * (c[1] as f64 * arg + c[2] as f64).sin();
            }
        }
        ys.push((sum / (s.modules as f64).sqrt() - task[1] as f64) * task[2] as f64);
        xs.extend(v);
    }
    (xs, ys)
}
