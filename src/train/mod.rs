//! Training: the one loop every experiment runs ([`runner`], with its checkpointed progress
//! [`loop_state`] and [`progress`] display), first-order meta-learning ([`meta`]), and
//! independent supervised runs on the batch axis ([`supervised`]); stopping a run from outside
//! ([`interrupt`]).

pub mod episode_twin;
pub mod interrupt;
pub mod loop_state;
pub mod meta;
pub mod progress;
pub mod runner;
pub mod runs;
pub mod supervised;
pub mod task_source;
