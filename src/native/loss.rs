//! Native `shaders/loss.wgsl` (port in progress).

pub(crate) use super::not_ported as run;
