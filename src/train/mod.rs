//! Training loops: first-order meta-learning ([`meta`]) and the hyperteacher experiment driver
//! ([`hyperteacher`]) that the CLI's `train` runs.

pub mod hyperteacher;
pub mod meta;
