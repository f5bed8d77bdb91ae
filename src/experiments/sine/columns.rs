//! This experiment's columns in a sweep's `runs.csv` (after the grid keys, `seed` and `run`),
//! and its measures in `summary.md` (its sweep plots are [`super::sample_complexity`]'s).

use std::path::Path;

use super::Summary;
use crate::error::{arg_err, Result};
use crate::report::runs_table::{Col, Measure};
use crate::run::read_json;

fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v:.6}"))
}

/// The `runs.csv` columns of the run whose `summary.json` is at `path`: `method, m, n`, the
/// test / OOD MSE at the run's best validation step, module recovery, then the rest.
pub fn summary_columns(path: &Path) -> Result<Vec<(String, String)>> {
    let s: Summary = read_json(path)?;
    let [x] = s.extras.0.as_slice() else {
        return Err(arg_err(
            "runs.csv",
            format!("{} holds a batch of runs, not one run", path.display()),
        ));
    };
    Ok(vec![
        ("method".into(), x.method.clone()),
        ("m".into(), x.m.to_string()),
        ("n".into(), x.n.to_string()),
        ("test_mse".into(), format!("{:.6}", x.test_mse)),
        ("ood_mse".into(), format!("{:.6}", x.ood_mse)),
        ("recovery".into(), opt(x.recovery)),
        ("ood_combination_mse".into(), opt(x.ood_combination_mse)),
        ("valid_mse".into(), format!("{:.6}", x.valid_mse)),
        ("final_test_mse".into(), format!("{:.6}", x.final_test_mse)),
        ("selected_step".into(), x.selected_step.to_string()),
        ("recovery_init".into(), opt(x.recovery_init)),
        ("kernel_objective".into(), opt(x.kernel_objective)),
        ("threshold".into(), format!("{}", x.threshold)),
        ("diverged".into(), x.diverged.to_string()),
        ("seconds".into(), format!("{:.1}", s.seconds)),
    ])
}

/// The `summary.md` measures.
pub const MEASURES: &[Measure] = &[
    Measure::new("test mse", &[Col::Run("test_mse")], |v| v[0], false),
    Measure::new("ood mse", &[Col::Run("ood_mse")], |v| v[0], false),
    Measure::new("recovery", &[Col::Run("recovery")], |v| v[0], false),
    Measure::new("minutes", &[Col::Run("seconds")], |v| v[0] / 60.0, false),
];
