//! Training: the one loop every experiment runs ([`runner`], with its checkpointed progress
//! [`loop_state`] and [`progress`] display) and first-order meta-learning ([`meta`]).

pub mod loop_state;
pub mod meta;
pub mod progress;
pub mod runner;
