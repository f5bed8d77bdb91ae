//! Training loops: first-order meta-learning ([`meta`]), the hyperteacher experiment driver
//! ([`hyperteacher`]) that the CLI's `train` runs, and independent supervised runs on the batch
//! axis ([`supervised`]).

pub mod hyperteacher;
pub mod meta;
pub mod supervised;
