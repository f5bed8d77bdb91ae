//! This experiment's columns in a sweep's `runs.csv` (after the grid keys, `seed` and `run`) and
//! its measures in `summary.md`.

use std::path::Path;

use super::Summary;
use crate::error::Result;
use crate::report::plot::{SecondPanel, SweepPlot};
use crate::report::runs_table::{Col, Measure};
use crate::run::read_json;

/// The `runs.csv` metric columns of the run whose `summary.json` is at `path`: loss and
/// accuracy of every set at the final and the best step, best step, decoder R², seconds.
pub fn summary_columns(path: &Path) -> Result<Vec<(String, String)>> {
    let s: Summary = read_json(path)?;
    let mut cols = Vec::new();
    for (which, sets) in [("final", &s.r#final), ("best", &s.best)] {
        for (set, m) in sets {
            cols.push((format!("{which}_{set}_loss"), format!("{:.6}", m.loss)));
            cols.push((format!("{which}_{set}_acc"), format!("{:.6}", m.acc)));
        }
    }
    cols.push((
        "best_step".into(),
        s.best_step.single().map_or(String::new(), usize::to_string),
    ));
    cols.push((
        "decoder_r2".into(),
        s.extras
            .decoder_r2
            .as_ref()
            .map_or(String::new(), |d| format!("{:.6}", d.mean)),
    ));
    cols.push(("seconds".into(), format!("{:.1}", s.seconds)));
    Ok(cols)
}

/// The sweep plot: final in-distribution (test) vs OOD accuracy per grid point, and their gap.
pub const SWEEP_PLOT: SweepPlot = SweepPlot {
    metric: "accuracy",
    first: ("test", "final_test_acc"),
    second: ("ood", "final_ood_acc"),
    right: SecondPanel::Gap,
};

const TEST_ACC: Col = Col::Set("test_acc");
const OOD_ACC: Col = Col::Set("ood_acc");
const TEST_LOSS: Col = Col::Set("test_loss");
const OOD_LOSS: Col = Col::Set("ood_loss");

/// The `summary.md` measures: accuracy and loss on test and OOD tasks, their gaps (signed),
/// decoder R² and minutes.
pub const MEASURES: &[Measure] = &[
    Measure::new("test acc", &[TEST_ACC], |v| v[0], false),
    Measure::new("ood acc", &[OOD_ACC], |v| v[0], false),
    Measure::new(
        "gap acc (test − ood)",
        &[TEST_ACC, OOD_ACC],
        |v| v[0] - v[1],
        true,
    ),
    Measure::new("test loss", &[TEST_LOSS], |v| v[0], false),
    Measure::new("ood loss", &[OOD_LOSS], |v| v[0], false),
    Measure::new(
        "gap loss (ood − test)",
        &[OOD_LOSS, TEST_LOSS],
        |v| v[0] - v[1],
        true,
    ),
    Measure::new("decoder R²", &[Col::Run("decoder_r2")], |v| v[0], false),
    Measure::new("minutes", &[Col::Run("seconds")], |v| v[0] / 60.0, false),
];
