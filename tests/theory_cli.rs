//! The theory experiment end to end through the binary: `train`, a sweep whose runs
//! train as one batch (each run's files equal those of the run trained alone), `runs.csv`
//! columns and the sweep plot.

mod common;

use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hypermod-theory-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run_ok(args: &[&str]) -> String {
    let out = common::hypermod_bin().args(args).output().unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "hypermod {args:?}\n{o}\n{e}");
    format!("{o}{e}")
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

fn last_record(dir: &Path) -> serde_json::Value {
    let log = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    serde_json::from_str(log.lines().last().unwrap()).unwrap()
}

#[test]
fn a_batched_sweep_run_equals_the_run_alone() {
    let _gpu = gpu_or_skip!();
    let sweep = tmp("sweep");
    let out = run_ok(&[
        "sweep",
        "tests/data/sweeps/tiny_theory.toml",
        "--out",
        sweep.to_str().unwrap(),
    ]);
    assert!(out.contains(common::batch_line()), "{out}");
    let alone = tmp("alone");
    run_ok(&[
        "train",
        "tests/data/tiny_theory.toml",
        "--set",
        "task.task_list=0,1;1,2",
        "--set",
        "train.seed=8",
        "--out",
        alone.to_str().unwrap(),
    ]);
    let runs: Vec<PathBuf> = std::fs::read_dir(&sweep)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("summary.json").exists())
        .collect();
    assert_eq!(runs.len(), 4, "{runs:?}");
    let twin = runs
        .iter()
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.contains("=0_1_1_2_seed") && name.ends_with("seed=8")
        })
        .expect("the run of list 0,1;1,2 with seed 8");
    let (a, b) = (summary(&alone), summary(twin));
    for key in [
        "final",
        "task_list",
        "label",
        "ood_loss",
        "latent_r2",
        "alignment",
    ] {
        assert_eq!(a[key], b[key], "{key} alone vs in the batch");
    }
    let (ra, rb) = (last_record(&alone), last_record(twin));
    assert_eq!(ra["train"], rb["train"]);
    assert_eq!(ra["sets"], rb["sets"]);
    assert_eq!(a["label"], "doomed", "0,1;1,2 does not span R³");

    let csv = std::fs::read_to_string(sweep.join("runs.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    for col in [
        "task_list",
        "label",
        "seed",
        "ood_loss",
        "latent_r2",
        "alignment",
    ] {
        assert!(header.split(',').any(|c| c == col), "{col} in {header}");
    }
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.contains("blessed") && csv.contains("doomed"), "{csv}");
    assert!(sweep.join("summary.md").exists());
    run_ok(&["plot", sweep.to_str().unwrap()]);
    let sweep_svg = std::fs::read_to_string(sweep.join("sweep.svg")).unwrap();
    assert!(
        sweep_svg.contains("OOD loss"),
        "the sweep plot's right panel"
    );
    let curves = std::fs::read_to_string(twin.join("learning_curves.svg")).unwrap();
    assert!(
        curves.contains("latent R²") && curves.contains("½·MSE"),
        "theory curves' axes"
    );
}

#[test]
fn theory_config_errors_name_the_key() {
    for (set, needle) in [
        ("task.task_list=0,9", "task.task_list"),
        ("student.hidden_factor=0", "student.hidden_factor"),
        ("train.cosine_alpha=2", "train.cosine_alpha"),
        ("train.lr=-1", "train.lr"),
    ] {
        let out = common::hypermod_bin()
            .args([
                "train",
                "tests/data/tiny_theory.toml",
                "--set",
                set,
                "--out",
            ])
            .arg(tmp("bad"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{set} accepted");
        assert!(err.contains(needle), "{set}: {err}");
        assert!(!err.contains("panicked"), "{set}: {err}");
    }
}
