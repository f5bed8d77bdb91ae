//! Teachers that generate the data of meta-learning experiments. The hyperteacher's task space
//! and splits live with their experiment ([`crate::experiments::hyperteacher::tasks`]).

pub mod teacher;
