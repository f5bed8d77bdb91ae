//! Experiment-specific studies outside the training loop: `hypermod sine-theory` (Boopathy et
//! al.'s Theorem 1 curves) and `hypermod teacher-stats` (the hyperteacher's soft targets).

use std::path::PathBuf;

use anyhow::Result;
use hypermod::experiments::hyperteacher::HyperteacherConfig;
use hypermod::experiments::ExperimentConfig;

/// `hypermod sine-theory`: evaluates, writes and plots the sine theory curves.
pub(crate) fn sine_theory(
    out: PathBuf,
    sweep: Option<PathBuf>,
    p: Option<usize>,
    n: Option<usize>,
    omega: Option<f64>,
) -> Result<()> {
    use hypermod::experiments::sine::theory_curve as tc;
    let table = match &sweep {
        Some(dir) => Some(hypermod::report::RunsTable::read(&dir.join("runs.csv"))?),
        None => None,
    };
    let theory = tc::evaluate(&tc::TheoryOptions { p, n, omega }, table.as_ref())?;
    let s = theory.spectrum;
    match (theory.omega_source, theory.fit) {
        (tc::OmegaSource::Fitted, Some(f)) => println!(
            "Ω = {:.4} fitted to {} empirical monolithic points (rms log error {:.3}); c = {}, d = {}",
            s.omega, f.points, f.rms_log_error, s.c, s.d
        ),
        (source, _) => println!(
            "Ω = {:.4} ({}); c = {}, d = {}{}",
            s.omega,
            match source {
                tc::OmegaSource::Given => "given",
                _ => "default: no sweep to fit",
            },
            s.c,
            s.d,
            theory
                .rms_log_error
                .map_or(String::new(), |e| format!("; rms log error on the sweep {e:.3}"))
        ),
    }
    for f in tc::write(&out, &theory)? {
        println!("wrote {}", f.display());
    }
    for f in tc::plot(&out, &theory)? {
        println!("wrote {}", f.display());
    }
    Ok(())
}

pub(crate) fn teacher_stats(
    config: PathBuf,
    set: Vec<String>,
    seeds: usize,
    tasks: usize,
    inputs: usize,
    json: Option<PathBuf>,
) -> Result<()> {
    let (cfg, _) = ExperimentConfig::load(&config, &set)?;
    let Some(c) = cfg.get::<HyperteacherConfig>() else {
        anyhow::bail!(
            "{}: teacher-stats needs a hyperteacher config, not {}",
            config.display(),
            cfg.describe()
        );
    };
    use hypermod::experiments::hyperteacher::target_stats::target_stats;
    let r = target_stats(c, seeds, tasks, inputs)?;
    println!(
        "soft targets of {} (M = {}, K = {}, support {:?}): {seeds} teacher seeds from {}, \
         {tasks} tasks × {inputs} inputs per set; mean ± sd over seeds",
        config.display(),
        c.task.modules,
        c.task.max_hot,
        c.task.support,
        c.train.seed
    );
    for (name, s) in [("in-distribution", &r.in_dist), ("ood", &r.ood)] {
        println!(
            "{name:>16}: max prob {:.4} ± {:.4}  entropy {:.4} ± {:.4} nats  majority class {:.4} ± {:.4}",
            s[0].mean, s[0].sd, s[1].mean, s[1].sd, s[2].mean, s[2].sd
        );
    }
    if let Some(path) = json {
        hypermod::run::write_json(&path, &r)?;
    }
    Ok(())
}
