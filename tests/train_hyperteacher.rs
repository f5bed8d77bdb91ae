//! End-to-end hyperteacher training through the CLI: the query loss falls, the run directory is
//! complete, every student runs, identical seeds give identical numbers, config errors come
//! before any GPU work.

mod common;

use std::path::{Path, PathBuf};

const TINY: &str = "tests/data/tiny_hyperteacher.toml";

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hypermod-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn train(out: &Path, set: &[&str]) -> std::process::Output {
    let mut cmd = common::hypermod_bin();
    cmd.arg("train").arg(TINY).arg("--out").arg(out);
    for s in set {
        cmd.args(["--set", s]);
    }
    cmd.output().unwrap()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn tiny_run_lowers_the_query_loss_and_writes_the_run_directory() {
    let _gpu = gpu_or_skip!();
    let out = out_dir("learn");
    let o = train(&out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let records: Vec<serde_json::Value> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps: Vec<u64> = records
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, vec![0, 60, 120]);
    let valid = |r: &serde_json::Value| r["sets"]["valid"]["loss"].as_f64().unwrap();
    let (first, last) = (valid(&records[0]), valid(&records[2]));
    // Stated factor: 120 outer steps lower the mean valid query loss by at least 4 % (seen here:
    // 7–10 % across seeds; an untrained or wrongly-signed meta-gradient does not move it).
    assert!(last <= 0.96 * first, "valid loss {first} → {last}");

    let summary = json(&out.join("summary.json"));
    for set in ["valid", "test", "ood", "ood_k1", "ood_k2"] {
        for which in ["final", "best"] {
            let m = &summary[which][set];
            assert!(
                m["loss"].as_f64().unwrap().is_finite(),
                "{which}.{set}: {m}"
            );
            assert!(
                (0.0..=1.0).contains(&m["acc"].as_f64().unwrap()),
                "{which}.{set}: {m}"
            );
        }
    }
    assert!([0, 60, 120].contains(&summary["best_step"].as_u64().unwrap()));
    assert_eq!(summary["skipped_steps"].as_f64(), Some(0.0));
    let r2 = &summary["decoder_r2"];
    assert_eq!(
        r2["per_module"].as_array().unwrap().len(),
        2,
        "one row per teacher layer: {r2}"
    );
    assert!(r2["mean"].as_f64().unwrap().is_finite());
    let info = json(&out.join("run.json"));
    assert!(
        info["adapter"]["name"].is_string() && info["hypermod_version"].is_string(),
        "{info}"
    );
    // The resolved config is stored and loads again.
    let cfg = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(cfg.contains("modules = 3"), "{cfg}");
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn every_student_runs_end_to_end() {
    let _gpu = gpu_or_skip!();
    for kind in ["hnet_linear", "hnet_deepmlp", "anil", "maml"] {
        let out = out_dir(kind);
        let k = format!("model.kind=\"{kind}\"");
        let o = train(
            &out,
            &[
                &k,
                "train.steps_outer=2",
                "train.eval_every=2",
                "train.eval_tasks=8",
            ],
        );
        assert!(
            o.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let s = json(&out.join("summary.json"));
        assert!(
            s["final"]["ood"]["loss"].as_f64().unwrap().is_finite(),
            "{kind}: {s}"
        );
        std::fs::remove_dir_all(&out).ok();
    }
}

#[test]
fn minibatched_inner_loop_runs_and_is_reproducible() {
    let _gpu = gpu_or_skip!();
    // ANIL on 4 of the tiny config's 16 support points per inner step (spec §5.1 minibatches,
    // drawn with replacement); the full-batch run differs, so the minibatch path is in use.
    let run = |name: &str, batch: &str| {
        let out = out_dir(name);
        let o = train(
            &out,
            &[
                "model.kind=\"anil\"",
                batch,
                "train.steps_outer=2",
                "train.eval_every=2",
                "train.eval_tasks=8",
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let s = json(&out.join("summary.json"));
        std::fs::remove_dir_all(&out).ok();
        assert!(
            s["final"]["ood"]["loss"].as_f64().unwrap().is_finite(),
            "{s}"
        );
        s["final"].clone()
    };
    let a = run("mb-a", "train.inner_batch=4");
    let b = run("mb-b", "train.inner_batch=4");
    let full = run("mb-full", "train.inner_batch=16");
    assert_eq!(a, b, "same seed, same device, different numbers");
    assert_ne!(a, full);
}

#[test]
fn same_seed_gives_identical_numbers_and_another_seed_does_not() {
    let _gpu = gpu_or_skip!();
    let run = |name: &str, seed: &str| {
        let out = out_dir(name);
        let o = train(
            &out,
            &[
                "train.steps_outer=3",
                "train.eval_every=3",
                "train.eval_tasks=8",
                seed,
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let s = json(&out.join("summary.json"));
        std::fs::remove_dir_all(&out).ok();
        s["final"].clone()
    };
    let a = run("seed-a", "train.seed=11");
    let b = run("seed-b", "train.seed=11");
    let c = run("seed-c", "train.seed=12");
    assert_eq!(a, b, "same seed, same device, different numbers");
    assert_ne!(a, c);
}

#[test]
fn config_errors_are_reported_before_gpu_work() {
    // No GPU needed: validation runs first, so this also holds on a machine without an adapter.
    let out = out_dir("bad");
    let o = train(&out, &["train.lr_outter=0.1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("lr_outter") && err.contains("did you mean `lr_outer`"),
        "{err}"
    );
    let o = train(&out, &["task.max_hot=4"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let o = common::hypermod_bin()
        .args(["train", "no/such/config.toml"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("no/such/config.toml"));
    assert!(
        !out.exists(),
        "a failed config must not create the run directory"
    );
}

#[test]
fn sweep_writes_one_csv_row_per_run_and_resumes() {
    let _gpu = gpu_or_skip!();
    let out = out_dir("sweep");
    std::fs::create_dir_all(&out).unwrap();
    let base = std::fs::canonicalize(TINY).unwrap();
    let sweep = out.join("sweep.toml");
    std::fs::write(
        &sweep,
        format!(
            "base = {base:?}\nseeds = [1, 2]\nset = [\"train.steps_outer=2\", \"train.eval_every=2\", \"train.eval_tasks=8\"]\n[grid]\n\"task.support\" = [\"random\"]\n"
        ),
    )
    .unwrap();
    let runs = out.join("runs");
    let sweep_cmd = || {
        common::hypermod_bin()
            .arg("sweep")
            .arg(&sweep)
            .arg("--out")
            .arg(&runs)
            .output()
            .unwrap()
    };
    let o = sweep_cmd();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(runs.join("runs.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[0].starts_with("task.support,seed,run,") && lines[0].contains("final_ood_acc"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("random,1,") && lines[2].starts_with("random,2,"),
        "{csv}"
    );
    let summary_md = std::fs::read_to_string(runs.join("summary.md")).unwrap();
    assert!(
        summary_md.contains("| random | 2 |") && summary_md.contains("gap acc (test − ood)"),
        "{summary_md}"
    );
    // Resuming: finished runs are read back, not run again.
    let summary = std::fs::read_dir(&runs).unwrap().find_map(|e| {
        let p = e.unwrap().path().join("summary.json");
        p.exists().then_some(p)
    });
    let before = std::fs::metadata(summary.as_ref().unwrap())
        .unwrap()
        .modified()
        .unwrap();
    let o = sweep_cmd();
    assert!(o.status.success());
    assert_eq!(
        std::fs::metadata(summary.unwrap())
            .unwrap()
            .modified()
            .unwrap(),
        before
    );
    assert_eq!(std::fs::read_to_string(runs.join("runs.csv")).unwrap(), csv);
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn bench_step_reports_steps_and_tasks_per_second() {
    let _gpu = gpu_or_skip!();
    let out = out_dir("bench-step");
    std::fs::create_dir_all(&out).unwrap();
    let json_path = out.join("step.json");
    let o = common::hypermod_bin()
        .args([
            "bench", "step", TINY, "--steps", "2", "--warmup", "1", "--json",
        ])
        .arg(&json_path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = json(&json_path);
    let (sps, tps) = (
        r["steps_per_s"].as_f64().unwrap(),
        r["tasks_per_s"].as_f64().unwrap(),
    );
    assert!(sps > 0.0 && (tps / sps - 8.0).abs() < 1e-9, "{r}");
    assert_eq!(r["meta_batch"].as_u64(), Some(8));
    // The memory figures: the whole footprint holds the reverse sweep's history, which a
    // second-order step needs and a first-order one does not.
    let (sweep, peak) = (
        r["sweep_bytes"].as_u64().unwrap(),
        r["peak_bytes"].as_u64().unwrap(),
    );
    assert!(peak > sweep, "{r}");
    match r["meta_gradient"].as_str().unwrap() {
        "second_order" => assert!(sweep > 0, "{r}"),
        "first_order" => assert_eq!(sweep, 0, "{r}"),
        other => panic!("meta_gradient {other}"),
    }
    // The sweep modes: storing every step's program costs more memory than replaying it, and
    // the report names the mode (recompute by default, auto resolved); first order has none.
    let mode = |set: &str| {
        let path = out.join(format!("{set}.json"));
        let o = common::hypermod_bin()
            .args(["bench", "step", TINY, "--steps", "1", "--warmup", "0"])
            .args(["--set", set, "--json"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        json(&path)
    };
    let (default, auto) = (
        mode("train.meta_gradient=\"second_order\""),
        mode("train.reverse_sweep=\"auto\""),
    );
    let (st, rc) = (
        mode("train.reverse_sweep=\"store\""),
        mode("train.reverse_sweep=\"recompute\""),
    );
    assert_eq!(st["reverse_sweep"], "store", "{st}");
    assert_eq!(rc["reverse_sweep"], "recompute", "{rc}");
    let bytes = |r: &serde_json::Value| r["sweep_bytes"].as_u64().unwrap();
    assert!(bytes(&st) > bytes(&rc), "store {st} vs recompute {rc}");
    assert_eq!(
        default["reverse_sweep"], "recompute",
        "the default: {default}"
    );
    assert_eq!(
        auto["reverse_sweep"], "store",
        "auto with room stores: {auto}"
    );
    let fo = mode("train.meta_gradient=\"first_order\"");
    assert!(fo["reverse_sweep"].is_null(), "{fo}");
    std::fs::remove_dir_all(&out).ok();
}
