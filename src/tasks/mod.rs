//! Task distributions of meta-learning experiments. They run on the CPU and decide *which* tasks a
//! run trains and evaluates on; the GPU side only ever sees the latents they produce.

pub mod hyperteacher;
pub mod teacher;
