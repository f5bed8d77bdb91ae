//! The one training loop with an experiment that is not the hyperteacher: a toy that minimises
//! x² by gradient steps, evaluating one set named `holdout` (no `valid`, no `ood`). The loop must
//! write its records, pick the best by the experiment's own selection set, checkpoint and resume
//! to the same numbers, and refuse an experiment whose selection set it does not evaluate.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use hypermod::checkpoint::TensorState;
use hypermod::gpu::{Device, Tensor};
use hypermod::train::runner::{self, Experiment, RunPlan, Schedule, SetMetrics, StepReport};
use hypermod::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
struct Loss {
    loss: f64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Extras {
    x_final: f64,
}

/// Gradient descent on f(x) = x² with step 0.1, x kept in a GPU tensor (its checkpointed state).
struct Toy {
    x: Tensor,
    best: Tensor,
    selection: &'static str,
}

impl Toy {
    fn new(gpu: &Device, selection: &'static str) -> Toy {
        Toy {
            x: gpu.upload(&[3.0], 1, 1, 1).unwrap(),
            best: gpu.zeros(1, 1, 1).unwrap(),
            selection,
        }
    }
    fn x(&self, gpu: &Device) -> f64 {
        gpu.read(&self.x).unwrap()[0] as f64
    }
}

impl Experiment for Toy {
    type Metrics = Loss;
    type Extras = Extras;
    fn train_step(&self, gpu: &Device, _step: usize) -> Result<StepReport<Loss>> {
        let x = self.x(gpu);
        gpu.write(&self.x, &[(x - 0.1 * 2.0 * x) as f32])?;
        Ok(StepReport {
            metrics: Loss { loss: x * x },
            consecutive_skips: 0,
        })
    }
    fn eval_sets(&self) -> Vec<String> {
        vec!["holdout".into()]
    }
    fn evaluate(&self, gpu: &Device) -> Result<SetMetrics<Loss>> {
        let x = self.x(gpu);
        Ok([("holdout".to_string(), Loss { loss: x * x })].into())
    }
    fn selection_set(&self) -> &str {
        self.selection
    }
    fn score(m: &Loss) -> f64 {
        m.loss
    }
    fn save_best(&self, gpu: &Device, _runs: &[usize]) -> Result<()> {
        Ok(gpu.write(&self.best, &gpu.read(&self.x)?)?)
    }
    fn skipped_steps(&self, _gpu: &Device) -> Result<f64> {
        Ok(0.0)
    }
    fn state(&self) -> TensorState<'_> {
        TensorState::new()
            .with("x", &self.x)
            .with("best", &self.best)
    }
    fn describe_step(m: &Loss) -> String {
        format!("loss {:.4}", m.loss)
    }
    fn describe_eval(_train: Option<&Loss>, sets: &SetMetrics<Loss>) -> String {
        format!("holdout {:.4}", sets["holdout"].loss)
    }
    fn summary_extras(&self, gpu: &Device) -> Result<Extras> {
        Ok(Extras {
            x_final: self.x(gpu),
        })
    }
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hypermod-runner-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn plan(dir: &std::path::Path, resume: bool) -> RunPlan {
    RunPlan {
        dir: dir.to_path_buf(),
        resume,
        started: Instant::now(),
    }
}

const SCHEDULE: Schedule = Schedule {
    steps: 6,
    eval_every: 3,
    max_consecutive_skips: 10,
};

#[test]
fn a_toy_experiment_trains_checkpoints_and_resumes_through_the_runner() {
    let gpu = gpu_or_skip!();
    let d = dir("toy");
    let toy = Toy::new(gpu, "holdout");
    let s = runner::train(gpu, &toy, &SCHEDULE, &plan(&d, false)).unwrap();
    // x_k = 3·0.8^k: the holdout loss at steps 0, 3, 6 falls; the best is the last.
    assert_eq!(s.best_step.single(), Some(&6));
    let x6 = 3.0 * 0.8f64.powi(6);
    assert!((s.extras.x_final - x6).abs() < 1e-5, "{}", s.extras.x_final);
    let log = std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
    let steps: Vec<u64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, vec![0, 3, 6]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap()).unwrap();
    assert!(summary["final"]["holdout"]["loss"].is_number(), "{summary}");
    assert!(summary["x_final"].is_number(), "{summary}");

    // Resume from the checkpoint of step 6 with more steps: continues from x_6, not from 3.
    let fresh = Toy::new(gpu, "holdout");
    let more = Schedule {
        steps: 9,
        ..SCHEDULE
    };
    let s = runner::train(gpu, &fresh, &more, &plan(&d, true)).unwrap();
    let x9 = 3.0 * 0.8f64.powi(9);
    assert!((s.extras.x_final - x9).abs() < 1e-5, "{}", s.extras.x_final);
    assert_eq!(s.best_step.single(), Some(&9));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_selection_set_the_experiment_does_not_evaluate_is_a_typed_error() {
    let gpu = gpu_or_skip!();
    let d = dir("noset");
    let toy = Toy::new(gpu, "valid");
    match runner::train(gpu, &toy, &SCHEDULE, &plan(&d, false)) {
        Err(Error::NoSuchSet { name, known }) => {
            assert_eq!(name, "valid");
            assert_eq!(known, vec!["holdout".to_string()]);
        }
        other => panic!("want NoSuchSet, got {other:?}"),
    }
    // Refused before any step: nothing was written.
    assert!(!d.join("metrics.jsonl").exists());
    let _ = std::fs::remove_dir_all(&d);
}

/// The toy as a registered experiment: a folder's `ExperimentDef` is all an experiment needs for
/// the shared run, resume, session and batch code (here driven through its `Registration`,
/// since the crate's `REGISTRY` is fixed at compile time).
#[derive(Clone, Debug, PartialEq)]
struct ToyConfig {
    steps: usize,
}

impl hypermod::experiments::ExperimentDef for Toy {
    const NAME: &'static str = "toy";
    type Config = ToyConfig;
    const MEASURES: &'static [hypermod::report::runs_table::Measure] = &[];

    fn load(
        table: toml::Table,
        _origin: &std::path::Path,
        _overrides: &[String],
    ) -> Result<(ToyConfig, toml::Table)> {
        let steps = table["steps"].as_integer().unwrap() as usize;
        Ok((ToyConfig { steps }, table))
    }
    fn describe(cfg: &ToyConfig) -> String {
        format!("x² for {} steps", cfg.steps)
    }
    fn build(gpu: &Device, cfgs: &[ToyConfig], _resume: bool) -> Result<(Toy, Schedule)> {
        let schedule = Schedule {
            steps: cfgs[0].steps,
            ..SCHEDULE
        };
        Ok((Toy::new(gpu, "holdout"), schedule))
    }
    fn summary_columns(_summary: &std::path::Path) -> Result<Vec<(String, String)>> {
        Ok(Vec::new())
    }
}

#[test]
fn an_experiment_def_is_all_a_new_experiment_needs() {
    use hypermod::experiments::{Registered, Registration};
    let gpu = gpu_or_skip!();
    let toy: &dyn Registered = &Registration::<Toy>::NEW;
    assert_eq!(toy.name(), "toy");
    assert_eq!(toy.seed_key(), "train.seed");
    assert!(toy.sweep_plot().is_none());
    let table: toml::Table = toml::from_str("steps = 6").unwrap();
    let (cfg, _) = toy.load_any(table, "toy.toml".as_ref(), &[]).unwrap();
    assert_eq!(toy.describe_any(&*cfg), "x² for 6 steps");
    // Runs one at a time: a batch is refused, with the experiment named.
    assert_eq!(toy.batch_key_any(&*cfg), None);
    assert_eq!(toy.max_batch_any(&*cfg, 64), 1);
    let err = toy
        .train_batch_any(gpu, &[&*cfg], &[], &dir("toy-batch"))
        .unwrap_err();
    assert!(
        err.to_string().contains("toy runs do not train as a batch"),
        "{err}"
    );
    // The shared run: trains into the directory, resumes to the same summary numbers.
    let d = dir("toy-registered");
    let s = toy.train_any(gpu, &*cfg, &d, false).unwrap();
    let summary: serde_json::Value = serde_json::from_str(s.json()).unwrap();
    assert_eq!(summary["best_step"], 6, "{summary}");
    let x6 = 3.0 * 0.8f64.powi(6);
    assert!(
        (summary["x_final"].as_f64().unwrap() - x6).abs() < 1e-5,
        "{summary}"
    );
    // A stepped session: the same first loss as the loop's first step.
    let (session, schedule) = toy.session_any(gpu, &*cfg).unwrap();
    assert_eq!(schedule.steps, 6);
    let (metrics, skips) = session.step_json(gpu, 0).unwrap();
    assert_eq!((metrics["loss"].as_f64().unwrap(), skips), (9.0, 0));
    // No step benchmark unless the experiment writes one.
    assert!(toy.bench_step_shape_any(&*cfg).is_err());
}
