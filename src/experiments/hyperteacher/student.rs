//! The config's student, whatever its type: the students' CPU twins are generic, so they cannot
//! be trait objects, and set-up code runs through [`StudentTask`] instead.

use super::config::{HyperteacherConfig, ModelKind};
use crate::students::gpu::GpuStudent;
use crate::students::{Anil, HnetDeep, HnetLinear, Maml};

/// Something to do with the config's student.
pub(crate) trait StudentTask {
    type Out;
    fn call<S: GpuStudent>(self, student: &S) -> Self::Out;
}

/// Builds the config's student (width and T = ratio·M from the config) and hands it to `task`.
pub(crate) fn with_student<W: StudentTask>(cfg: &HyperteacherConfig, task: W) -> W::Out {
    let t = cfg.task.modules * cfg.model.ratio_templates;
    let width = cfg.width();
    match cfg.model.kind {
        ModelKind::HnetLinear => task.call(&HnetLinear {
            hidden_dim: width,
            ..HnetLinear::paper(t)
        }),
        ModelKind::HnetDeepmlp => task.call(&HnetDeep {
            hidden_dim: width,
            ..HnetDeep::paper(t)
        }),
        ModelKind::Anil => task.call(&Anil {
            hidden_dim: width,
            ..Anil::paper()
        }),
        ModelKind::Maml => task.call(&Maml {
            hidden_dim: width,
            ..Maml::paper()
        }),
    }
}

/// The student's parameter counts for a config (meta, task), without touching the GPU.
pub fn param_counts(cfg: &HyperteacherConfig) -> (usize, usize) {
    struct Counts;
    impl StudentTask for Counts {
        type Out = (usize, usize);
        fn call<S: GpuStudent>(self, student: &S) -> (usize, usize) {
            let l = student.param_layout();
            (l.meta_len(), l.task_len())
        }
    }
    with_student(cfg, Counts)
}
