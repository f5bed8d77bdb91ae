//! The config's student, whatever its type: the students' CPU twins are generic, so they cannot
//! be trait objects, and set-up code runs through [`StudentTask`] instead.

use super::config::{HyperteacherConfig, ModelKind};
use crate::students::gpu::GpuStudent;
use crate::students::{Anil, HnetDeep, HnetLinear, Maml};

/// Something to do with the config's student.
pub trait StudentTask {
    /// What it returns.
    type Out;
    /// Does it with `student`.
    fn call<S: GpuStudent>(self, student: &S) -> Self::Out;
}

/// A student's kind and sizes, whatever the experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StudentShape {
    /// Which student.
    pub kind: ModelKind,
    /// Inputs per row.
    pub input_dim: usize,
    /// Outputs per row.
    pub output_dim: usize,
    /// Hidden width.
    pub width: usize,
    /// Hidden layers of the (target) network.
    pub num_hidden: usize,
    /// Modules T of the hypernetworks.
    pub templates: usize,
}

/// Builds the student of `shape` (the paper's body sizes for the nonlinear hypernetwork) and
/// hands it to `task`.
pub fn build_student<W: StudentTask>(shape: &StudentShape, task: W) -> W::Out {
    let StudentShape {
        kind,
        input_dim,
        output_dim,
        width,
        num_hidden,
        templates,
    } = *shape;
    match kind {
        ModelKind::HnetLinear => task.call(&HnetLinear {
            input_dim,
            output_dim,
            hidden_dim: width,
            num_hidden,
            num_templates: templates,
        }),
        ModelKind::HnetDeepmlp => task.call(&HnetDeep {
            input_dim,
            output_dim,
            hidden_dim: width,
            num_hidden,
            ..HnetDeep::paper(templates)
        }),
        ModelKind::Anil => task.call(&Anil {
            input_dim,
            output_dim,
            hidden_dim: width,
            num_hidden,
        }),
        ModelKind::Maml => task.call(&Maml {
            input_dim,
            output_dim,
            hidden_dim: width,
            num_hidden,
        }),
    }
}

/// The hyperteacher config's student: the paper's sizes, its width and T = ratio·M.
pub fn student_shape(cfg: &HyperteacherConfig) -> StudentShape {
    // Every paper student of the hyperteacher maps 16 inputs to 8 logits through 3 hidden layers.
    let paper = HnetLinear::paper(1);
    StudentShape {
        kind: cfg.model.kind,
        input_dim: paper.input_dim,
        output_dim: paper.output_dim,
        width: cfg.width(),
        num_hidden: paper.num_hidden,
        templates: cfg.task.modules * cfg.model.ratio_templates,
    }
}

/// Builds the config's student (width and T = ratio·M from the config) and hands it to `task`.
pub fn with_student<W: StudentTask>(cfg: &HyperteacherConfig, task: W) -> W::Out {
    build_student(&student_shape(cfg), task)
}

/// A student's parameter counts (meta, task), without touching the GPU.
pub fn shape_param_counts(shape: &StudentShape) -> (usize, usize) {
    struct Counts;
    impl StudentTask for Counts {
        type Out = (usize, usize);
        fn call<S: GpuStudent>(self, student: &S) -> (usize, usize) {
            let l = student.param_layout();
            (l.meta_len(), l.task_len())
        }
    }
    build_student(shape, Counts)
}

/// The student's parameter counts for a config (meta, task), without touching the GPU.
pub fn param_counts(cfg: &HyperteacherConfig) -> (usize, usize) {
    shape_param_counts(&student_shape(cfg))
}
