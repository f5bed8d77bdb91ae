//! Runs a researcher can trust: a run killed with SIGKILL at a random moment and resumed ends
//! with exactly the numbers of an uninterrupted run; a non-finite meta-gradient is skipped on the
//! GPU and counted; too many in a row stop the run with a usable checkpoint; Ctrl-C stops after
//! the current step with a checkpoint that resumes exactly.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use hypermod::checkpoint::Checkpoint;
use rand::RngExt;

const TINY: &str = "tests/data/tiny_hyperteacher.toml";

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hypermod-resume-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn hypermod(args: &[&str], out: Option<&Path>) -> Command {
    let mut c = common::hypermod_bin();
    c.args(args);
    if let Some(o) = out {
        c.arg("--out").arg(o);
    }
    c
}

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

fn records(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// The interrupted-and-resumed run `cut` ended with the numbers of the uninterrupted `full`:
/// summary fields and every metrics.jsonl record (times aside).
fn assert_same_numbers(full: &Path, cut: &Path, what: &str) {
    let (a, b) = (summary(full), summary(cut));
    for key in ["final", "best", "best_step", "decoder_r2", "skipped_steps"] {
        assert_eq!(a[key], b[key], "{key} differs after {what}");
    }
    assert_eq!(
        common::metrics_without_times(full),
        common::metrics_without_times(cut),
        "metrics.jsonl differs after {what}"
    );
}

const SETS: [&str; 8] = [
    "--set",
    "train.steps_outer=60",
    "--set",
    "train.eval_every=10",
    "--set",
    "train.eval_tasks=8",
    "--set",
    "train.seed=5",
];

#[test]
fn sigkill_at_a_random_step_then_resume_gives_the_same_final_numbers() {
    let _gpu = gpu_or_skip!();
    kill_then_resume("hyperteacher", TINY, &SETS, 60, 10, &["meta", "outer.m"]);
}

/// The theory experiment (R = 1 batch of runs) resumes exactly too.
#[test]
fn a_killed_theory_run_resumes_to_the_same_numbers() {
    let _gpu = gpu_or_skip!();
    // Long enough (a few seconds) that the kill lands mid-run: the native backend runs a tiny
    // step ~40× faster than lavapipe.
    let (steps, every) = if common::device_name() == "cpu" {
        (8000, 800)
    } else {
        (240, 40)
    };
    let (s, e) = (
        format!("train.steps={steps}"),
        format!("train.eval_every={every}"),
    );
    kill_then_resume(
        "theory",
        "tests/data/tiny_theory.toml",
        &["--set", &s, "--set", &e],
        steps,
        every,
        &["student", "outer.m"],
    );
}

/// Trains `config` (directories named after `name`) with `sets` (`steps` steps, evaluating every `every`) in full and again
/// killed with SIGKILL at a random moment after its first checkpoint, resumes the second and
/// asserts both end with the same numbers; the checkpoint must hold `tensors`.
fn kill_then_resume(
    name: &str,
    config: &str,
    sets: &[&str],
    steps: usize,
    every: usize,
    tensors: &[&str],
) {
    let full = out_dir(&format!("{name}-full"));
    let mut args = vec!["train", config];
    args.extend(sets);
    ok(hypermod(&args, Some(&full)).output().unwrap());

    let killed = out_dir(&format!("{name}-killed"));
    let mut child = hypermod(&args, Some(&killed))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the first checkpoint after step 0, then kill at a random moment within the next
    // evaluation periods.
    let t0 = Instant::now();
    while records(&killed) < 2 {
        assert!(t0.elapsed() < Duration::from_secs(120), "no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let delay = common::rng(std::process::id() as u64).random_range(0..1500);
    std::thread::sleep(Duration::from_millis(delay));
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let done_before = records(&killed);
    assert!(
        !killed.join("summary.json").exists() || done_before == steps / every + 1,
        "killed run should normally be unfinished"
    );
    let ck = Checkpoint::load(&killed.join("checkpoint.safetensors")).unwrap();
    for t in tensors {
        assert!(ck.tensors.contains_key(*t), "checkpoint lacks {t}");
    }
    let step: usize = ck.metadata["step"].parse().unwrap();
    assert!(
        step >= every && step.is_multiple_of(every),
        "checkpoint at step {step}"
    );

    let o = ok(
        hypermod(&["train", "--resume", killed.to_str().unwrap()], None)
            .output()
            .unwrap(),
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("resuming"));
    assert_same_numbers(&full, &killed, &format!("kill at ~step {step} + resume"));
    std::fs::remove_dir_all(&full).ok();
    std::fs::remove_dir_all(&killed).ok();
}

#[test]
fn an_injected_nan_is_skipped_and_counted() {
    let _gpu = gpu_or_skip!();
    let out = out_dir("nan-once");
    ok(hypermod(
        &[
            "train",
            TINY,
            "--set",
            "train.steps_outer=6",
            "--set",
            "train.eval_every=6",
            "--set",
            "train.eval_tasks=8",
            "--set",
            "train.inject_nan_steps=[3]",
        ],
        Some(&out),
    )
    .output()
    .unwrap());
    let s = summary(&out);
    assert_eq!(s["skipped_steps"].as_f64(), Some(1.0), "{s}");
    assert!(s["final"]["valid"]["loss"].as_f64().unwrap().is_finite());
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn consecutive_non_finite_steps_stop_the_run_with_a_usable_checkpoint() {
    let _gpu = gpu_or_skip!();
    let out = out_dir("nan-stop");
    let o = hypermod(
        &[
            "train",
            TINY,
            "--set",
            "train.steps_outer=8",
            "--set",
            "train.eval_every=4",
            "--set",
            "train.eval_tasks=8",
            "--set",
            "train.inject_nan_steps=[2, 3, 4]",
            "--set",
            "train.max_consecutive_skips=3",
        ],
        Some(&out),
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("3 consecutive outer steps had a non-finite meta-gradient")
            && err.contains("--resume"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let ck = Checkpoint::load(&out.join("checkpoint.safetensors")).unwrap();
    assert_eq!(ck.metadata["step"], "4");
    assert!(
        ck.tensors["meta"].1.iter().all(|v| v.is_finite()),
        "skipped steps must leave finite parameters"
    );
    assert_eq!(ck.tensors["outer.skipped"].1, vec![3.0]);
    // The checkpoint is usable: the run continues from it to the end.
    ok(
        hypermod(&["train", "--resume", out.to_str().unwrap()], None)
            .output()
            .unwrap(),
    );
    let s = summary(&out);
    assert_eq!(s["steps"].as_u64(), Some(8));
    assert_eq!(s["skipped_steps"].as_f64(), Some(3.0));
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn resume_errors_are_clear() {
    let dir = out_dir("not-a-run");
    let o = hypermod(&["train", "--resume", dir.to_str().unwrap()], None)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("not a run directory"), "{err}");
    // A truncated checkpoint is reported, not loaded.
    std::fs::create_dir_all(&dir).unwrap();
    let mut ck = Checkpoint::default();
    ck.tensors
        .insert("w".into(), (vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    ck.metadata.insert("step".into(), "7".into());
    let good = dir.join("good.safetensors");
    ck.save(&good).unwrap();
    assert_eq!(Checkpoint::load(&good).unwrap(), ck, "round trip");
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
    let e = Checkpoint::load(&cut).unwrap_err().to_string();
    assert!(
        e.contains("not a safetensors checkpoint") && e.contains("cut.safetensors"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn ctrl_c_stops_after_the_step_with_a_checkpoint_that_resumes_exactly() {
    let gpu = gpu_or_skip!();
    // Signal handling does not depend on the device; the run must be long enough for the
    // signal to arrive mid-run, which is quick only on the native backend.
    if !gpu.is_native() {
        eprintln!("Ctrl-C test runs on the native backend only (HYPERMOD_DEVICE=cpu)");
        return;
    }
    let sets = [
        "--set",
        "train.steps_outer=3000",
        "--set",
        "train.eval_every=1000",
    ];
    let mut args = vec!["train", TINY];
    args.extend(sets);
    let full = out_dir("int-full");
    ok(hypermod(&args, Some(&full)).output().unwrap());

    let cut = out_dir("int-cut");
    let child = hypermod(&args, Some(&cut))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while records(&cut) < 1 {
        assert!(t0.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted after step") && err.contains("--resume"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!cut.join("summary.json").exists(), "stopped before the end");
    let ck = Checkpoint::load(&cut.join("checkpoint.safetensors")).unwrap();
    let step: usize = ck.metadata["step"].parse().unwrap();
    assert!(step > 0 && step < 3000, "checkpoint at step {step}");

    ok(
        hypermod(&["train", "--resume", cut.to_str().unwrap()], None)
            .output()
            .unwrap(),
    );
    assert_same_numbers(&full, &cut, &format!("Ctrl-C at step {step} + resume"));
    std::fs::remove_dir_all(&full).ok();
    std::fs::remove_dir_all(&cut).ok();
}
