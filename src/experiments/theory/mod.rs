//! Schug et al.'s theory experiment (spec `schug-hyperteacher.md` §7; issue 13). Built so far:
//! task lists as the authors write them and the rule that says which lists identify the modules
//! ([`task_list`]). The MultitaskNet teacher/student, training and metrics are not built yet.

pub mod task_list;
