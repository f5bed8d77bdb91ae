//! Set-up shared by training and `bench step`: the config is resolved here, once, into the task
//! split, the pools of task latents and the meta-learner (teacher, student, episodes, optimisers)
//! on the GPU. Nothing after this reads the config.

use super::config::task_err;
use super::config::{HyperteacherConfig, TrainConfig, TrainParams};
use super::student::{with_student, StudentTask};
use super::tasks::{Coefficients, Task, TaskSpace, TaskSplit, TaskSupport};
use crate::error::Result;
use crate::gpu::Device;
use crate::students::gpu::GpuStudent;
use crate::teacher::{TeacherConfig, TeacherWeightsGpu};
use crate::train::meta::{MetaConfig, MetaLearner};
use crate::train::task_source::TeacherSource;

/// The task split, the latent pools and the meta-learner of one config.
pub(crate) struct Setup {
    pub pools: Pools,
    pub learner: MetaLearner,
}

/// A task space, its split and the latents of its training and held-out tasks.
pub(crate) struct Pools {
    pub space: TaskSpace,
    pub split: TaskSplit,
    pub train_pool: Vec<Vec<f32>>,
    pub ood_pool: Vec<Vec<f32>>,
}

impl Pools {
    /// The split of `space` by `support` and its latent pools (continuous coefficients drawn
    /// with the run seed when `continuous`).
    pub fn new(
        space: TaskSpace,
        support: TaskSupport,
        continuous: bool,
        seed: u64,
    ) -> Result<Pools> {
        let split = space.split(support).map_err(task_err)?;
        let coeff = |salt| coefficients(continuous, seed, salt);
        let train_pool = pool(&space, &split.train, coeff(1))?;
        let ood_pool = pool(&space, &split.ood, coeff(2))?;
        Ok(Pools {
            space,
            split,
            train_pool,
            ood_pool,
        })
    }
}

/// The latents of `tasks`, one vector per task.
pub(crate) fn pool(
    space: &TaskSpace,
    tasks: &[Task],
    coefficients: Coefficients,
) -> Result<Vec<Vec<f32>>> {
    let flat = space.latents(tasks, coefficients).map_err(task_err)?;
    Ok(flat
        .chunks(space.latent_len())
        .map(<[f32]>::to_vec)
        .collect())
}

/// The coefficients of the latents of one task pool (`salt` separates the pools' draws).
pub(crate) fn coefficients(continuous: bool, seed: u64, salt: u64) -> Coefficients {
    if continuous {
        Coefficients::Continuous { seed: seed ^ salt }
    } else {
        Coefficients::Binary
    }
}

/// Builds the [`Setup`] of a validated config.
pub(crate) fn setup(gpu: &Device, cfg: &HyperteacherConfig) -> Result<Setup> {
    struct Build<'a> {
        gpu: &'a Device,
        cfg: &'a HyperteacherConfig,
    }
    impl StudentTask for Build<'_> {
        type Out = Result<Setup>;
        fn call<S: GpuStudent>(self, student: &S) -> Result<Setup> {
            build(self.gpu, self.cfg, student)
        }
    }
    with_student(cfg, Build { gpu, cfg })
}

fn build<S: GpuStudent>(gpu: &Device, cfg: &HyperteacherConfig, student: &S) -> Result<Setup> {
    let tr = &cfg.train;
    let pools = Pools::new(
        cfg.task_space()?,
        cfg.task_support(),
        cfg.task.continuous,
        tr.seed,
    )?;
    let teacher_cfg = TeacherConfig {
        hidden_dim: cfg.task.hidden_dim,
        num_hidden: cfg.task.layers + 1,
        ..TeacherConfig::paper(cfg.task.modules, cfg.task.chunking, tr.seed)
    };
    let weights = TeacherWeightsGpu::generate(gpu, teacher_cfg)?;
    let eval_batch = tr.eval_tasks.min(tr.meta_batch.max(64));
    let learner = MetaLearner::new(
        gpu,
        student,
        &TeacherSource::new(&weights),
        tr.meta_batch,
        eval_batch,
        meta_config(cfg),
    )?;
    Ok(Setup { pools, learner })
}

fn meta_config(cfg: &HyperteacherConfig) -> MetaConfig {
    let shots = (cfg.task.shots_support, cfg.task.shots_query);
    resolved_meta_config(&cfg.train, &cfg.train_params(), shots)
}

/// The meta-learner's settings from a resolved `[train]` section and the (support, query)
/// units per task.
pub(crate) fn resolved_meta_config(
    train: &TrainConfig,
    tp: &TrainParams,
    (shots_support, shots_query): (usize, usize),
) -> MetaConfig {
    MetaConfig {
        seed: train.seed,
        shots_support,
        inner_batch: tp.inner_batch,
        shots_query,
        steps_inner: tp.steps_inner,
        inner: MetaConfig::inner_adamw(tp.lr_inner as f32),
        outer: MetaConfig::outer_adamw(
            tp.lr_outer as f32,
            tp.wd_outer as f32,
            tp.max_grad_norm as f32,
        ),
        meta_gradient: tp.meta_gradient,
        sweep: train.reverse_sweep,
        sweep_memory: train.sweep_memory_mib.saturating_mul(1 << 20),
    }
}
