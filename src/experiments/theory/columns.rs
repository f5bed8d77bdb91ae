//! This experiment's columns in a sweep's `runs.csv` (after the grid keys, `seed` and `run`),
//! its measures in `summary.md` and its sweep plot.

use std::path::Path;

use super::Summary;
use crate::error::{arg_err, Result};
use crate::report::plot::{SecondPanel, SweepPlot};
use crate::report::runs_table::{Col, Measure};
use crate::run::read_json;

fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v:.6}"))
}

/// The `runs.csv` columns of the run whose `summary.json` is at `path`: task list, label, the
/// means over the h-hot families (`ood_loss`, `latent_r2` train-vs-OOD), template `alignment`,
/// generated-weight alignment, then the final loss and R² of every family, and seconds.
pub fn summary_columns(path: &Path) -> Result<Vec<(String, String)>> {
    let s: Summary = read_json(path)?;
    let [extras] = s.extras.0.as_slice() else {
        return Err(arg_err(
            "runs.csv",
            format!("{} holds a batch of runs, not one run", path.display()),
        ));
    };
    let mut cols = vec![
        ("task_list".to_string(), extras.task_list.clone()),
        ("label".to_string(), extras.label.clone()),
        ("ood_loss".to_string(), format!("{:.6}", extras.ood_loss)),
        ("latent_r2".to_string(), opt(extras.latent_r2)),
        ("alignment".to_string(), opt(extras.alignment)),
        ("gen_alignment".to_string(), opt(extras.gen_alignment)),
    ];
    for (set, m) in &s.r#final {
        let Some(m) = m.0.first() else { continue };
        cols.push((format!("final_{set}_loss"), format!("{:.6}", m.loss)));
        cols.push((format!("final_{set}_r2"), opt(m.r2_train_vs_ood)));
    }
    cols.push(("seconds".into(), format!("{:.1}", s.seconds)));
    Ok(cols)
}

/// The sweep plot: latent R² and template alignment per grid point, then the OOD loss.
pub const SWEEP_PLOT: SweepPlot = SweepPlot {
    metric: "R² / alignment",
    first: ("latent R² (train vs h-hot)", "latent_r2"),
    second: ("template alignment", "alignment"),
    right: SecondPanel::Metric {
        title: "OOD loss (mean over h-hot families)",
        metric: "½·MSE",
        column: "ood_loss",
    },
};

/// The `summary.md` measures.
pub const MEASURES: &[Measure] = &[
    Measure::new("ood loss", &[Col::Run("ood_loss")], |v| v[0], false),
    Measure::new("latent R²", &[Col::Run("latent_r2")], |v| v[0], false),
    Measure::new("alignment", &[Col::Run("alignment")], |v| v[0], false),
    Measure::new(
        "gen alignment",
        &[Col::Run("gen_alignment")],
        |v| v[0],
        false,
    ),
    Measure::new("minutes", &[Col::Run("seconds")], |v| v[0] / 60.0, false),
];
