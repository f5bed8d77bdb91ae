//! The sine experiment end to end through the binary: a sweep whose runs train in batches (a
//! run's summary equals the run trained alone), `runs.csv` and `summary.csv` columns, the
//! scaling plots, sharding + merge giving the unsharded tables, resume of a killed-free
//! checkpoint, and config errors naming their key.

mod common;

use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hypermod-sine-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run(args: &[&str]) -> (bool, String) {
    let out = common::hypermod_bin().args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn run_ok(args: &[&str]) -> String {
    let (ok, text) = run(args);
    assert!(ok, "hypermod {args:?}\n{text}");
    text
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

/// `runs.csv` with the wall-clock column blanked (timings differ between any two runs).
fn runs_csv_without_seconds(dir: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("runs.csv")).unwrap();
    let rows: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    let col = rows[0].iter().position(|h| h == "seconds").unwrap();
    rows.into_iter()
        .map(|mut r| {
            r[col].clear();
            r
        })
        .collect()
}

#[test]
fn a_sweep_writes_runs_summary_and_plots_and_its_runs_equal_the_runs_alone() {
    let _gpu = gpu_or_skip!();
    let sweep = tmp("sweep");
    let out = run_ok(&[
        "sweep",
        "tests/data/sweeps/tiny_sine.toml",
        "--out",
        sweep.to_str().unwrap(),
    ]);
    assert!(out.contains(common::batch_line()), "{out}");
    let rows = runs_csv_without_seconds(&sweep);
    for col in [
        "method", "m", "n", "seed", "test_mse", "ood_mse", "recovery", "diverged",
    ] {
        assert!(
            rows[0].iter().any(|h| h == col),
            "runs.csv lacks {col}: {:?}",
            rows[0]
        );
    }
    assert_eq!(rows.len(), 1 + 18);
    let summary_csv = std::fs::read_to_string(sweep.join("summary.csv")).unwrap();
    let lines: Vec<&str> = summary_csv.lines().collect();
    assert!(
        lines[0].starts_with("method,m,sample_complexity"),
        "{summary_csv}"
    );
    assert_eq!(lines.len(), 1 + 3, "one row per (method, m): {summary_csv}");
    // Module recovery exists for the modular methods only.
    let mono = lines.iter().find(|l| l.starts_with("monolithic,")).unwrap();
    assert_eq!(mono.split(',').nth(3), Some(""), "{mono}");
    let kernel = lines
        .iter()
        .find(|l| l.starts_with("modular_kernel,"))
        .unwrap();
    let rec: f64 = kernel.split(',').nth(3).unwrap().parse().unwrap();
    assert!((0.0..=1.0).contains(&rec), "{kernel}");

    // A batched run equals the same run trained alone.
    let alone = tmp("alone");
    run_ok(&[
        "train",
        "tests/data/tiny_sine.toml",
        "--set",
        "task.n_train=80",
        "--set",
        "train.seed=2",
        "--out",
        alone.to_str().unwrap(),
    ]);
    let twin = std::fs::read_dir(&sweep)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.contains("modular_kernel")
                && name.contains("n_train=80_")
                && name.ends_with("seed=2")
        })
        .expect("the kernel run with n = 80, seed 2");
    let (a, b) = (summary(&alone), summary(&twin));
    for key in [
        "final",
        "test_mse",
        "ood_mse",
        "recovery",
        "recovery_init",
        "kernel_objective",
    ] {
        assert_eq!(a[key], b[key], "{key} alone vs in the batch");
    }

    let plots = run_ok(&["plot", sweep.to_str().unwrap()]);
    for f in [
        "sample_complexity.png",
        "sample_complexity.svg",
        "test_mse_vs_n.png",
    ] {
        assert!(sweep.join(f).is_file(), "{f} missing: {plots}");
    }

    // Sharded into three processes and merged: the unsharded tables.
    let shards: Vec<PathBuf> = (0..3).map(|i| tmp(&format!("shard{i}"))).collect();
    let mut children: Vec<_> = shards
        .iter()
        .enumerate()
        .map(|(i, d)| {
            common::hypermod_bin()
                .args([
                    "sweep",
                    "tests/data/sweeps/tiny_sine.toml",
                    "--out",
                    d.to_str().unwrap(),
                    "--shard",
                    &format!("{i}/3"),
                ])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in &mut children {
        assert!(c.wait().unwrap().success());
    }
    let merged = tmp("merged");
    let mut args = vec!["sweep", "merge", merged.to_str().unwrap()];
    let names: Vec<String> = shards.iter().map(|d| d.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    run_ok(&args);
    assert_eq!(runs_csv_without_seconds(&merged), rows);
    assert_eq!(
        std::fs::read_to_string(merged.join("summary.csv")).unwrap(),
        summary_csv
    );
}

#[test]
fn a_run_resumes_from_its_checkpoint_to_the_same_numbers() {
    let _gpu = gpu_or_skip!();
    let full = tmp("full");
    run_ok(&[
        "train",
        "tests/data/tiny_sine.toml",
        "--out",
        full.to_str().unwrap(),
    ]);
    // The same run stopped after its step-3 checkpoint: train 3 steps, then resume to 6.
    let part = tmp("part");
    run_ok(&[
        "train",
        "tests/data/tiny_sine.toml",
        "--set",
        "train.steps=3",
        "--out",
        part.to_str().unwrap(),
    ]);
    let config = part.join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("steps = 3\n", "steps = 6\n")).unwrap();
    std::fs::remove_file(part.join("summary.json")).unwrap();
    run_ok(&["train", "--resume", part.to_str().unwrap()]);
    let (a, b) = (summary(&full), summary(&part));
    for key in [
        "final",
        "test_mse",
        "ood_mse",
        "valid_mse",
        "selected_step",
        "recovery",
    ] {
        assert_eq!(a[key], b[key], "{key}: resumed vs uninterrupted");
    }
}

#[test]
fn config_errors_name_their_key() {
    let (ok, text) = run(&[
        "train",
        "tests/data/tiny_sine.toml",
        "--set",
        "model.method=\"modular_magic\"",
        "--out",
        tmp("bad").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        text.contains("model.method") || text.contains("modular_magic"),
        "{text}"
    );
    let (ok, text) = run(&[
        "train",
        "tests/data/tiny_sine.toml",
        "--set",
        "task.amplitudes=[1.0]",
        "--out",
        tmp("bad2").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(text.contains("task.amplitudes"), "{text}");
    let (ok, text) = run(&[
        "train",
        "tests/data/tiny_sine.toml",
        "--set",
        "kernel_init.batch=1",
        "--out",
        tmp("bad3").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(text.contains("kernel_init.batch"), "{text}");
}
