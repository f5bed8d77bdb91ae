//! No silent overwrite: a run directory that holds a run is refused (pointing at `--resume` and
//! `--overwrite`); a sweep continues itself in its own directory but refuses a run's directory
//! or another sweep's, unless `--overwrite`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

const TINY: &str = "tests/data/tiny_hyperteacher.toml";
const SHORT: [&str; 6] = [
    "--set",
    "train.steps_outer=1",
    "--set",
    "train.eval_every=1",
    "--set",
    "train.eval_tasks=8",
];

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hypermod-rundirs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn hypermod(args: &[&str], out: &Path) -> Output {
    common::hypermod_bin()
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn train_refuses_a_directory_that_holds_a_run() {
    // No GPU needed: the directory is checked before any GPU work. Any one run file marks it.
    for file in [
        "config.toml",
        "summary.json",
        "checkpoint.safetensors",
        "metrics.jsonl",
    ] {
        let out = temp_dir("refuse");
        std::fs::write(out.join(file), "first run").unwrap();
        let mut args = vec!["train", TINY];
        args.extend(SHORT);
        let o = hypermod(&args, &out);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{file}: {err}");
        assert!(
            err.contains("already holds a run")
                && err.contains("--resume")
                && err.contains("--overwrite"),
            "{file}: {err}"
        );
        assert_eq!(
            std::fs::read_to_string(out.join(file)).unwrap(),
            "first run",
            "{file} was touched"
        );
        std::fs::remove_dir_all(&out).ok();
    }
}

#[test]
fn overwrite_replaces_a_run_when_asked() {
    let _gpu = gpu_or_skip!();
    let out = temp_dir("overwrite");
    let mut args = vec!["train", TINY];
    args.extend(SHORT);
    let o = hypermod(&args, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let again = hypermod(&args, &out);
    assert_eq!(
        again.status.code(),
        Some(1),
        "second run into the same --out must be refused"
    );
    args.push("--overwrite");
    let o = hypermod(&args, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("summary.json").exists());
    std::fs::remove_dir_all(&out).ok();
}

fn write_sweep(dir: &Path, name: &str, seeds: &str) -> PathBuf {
    let base = std::fs::canonicalize(TINY).unwrap();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "base = {base:?}\nseeds = {seeds}\nset = [\"train.steps_outer=1\", \"train.eval_every=1\", \"train.eval_tasks=8\"]\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn sweep_refuses_a_run_directory_and_another_sweep() {
    // No GPU needed: checked before any GPU work.
    let dir = temp_dir("sweep-refuse");
    let a = write_sweep(&dir, "a.toml", "[1]");
    let b = write_sweep(&dir, "b.toml", "[2]");
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("config.toml"), "a run").unwrap();
    let o = hypermod(&["sweep", a.to_str().unwrap()], &run);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("already holds a run") && stderr(&o).contains("--overwrite"));
    // A directory of sweep a (its copy of the sweep file) refuses sweep b.
    let swept = dir.join("swept");
    std::fs::create_dir_all(&swept).unwrap();
    std::fs::copy(&a, swept.join("sweep.toml")).unwrap();
    let o = hypermod(&["sweep", b.to_str().unwrap()], &swept);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("another sweep") && stderr(&o).contains("--overwrite"),
        "{}",
        stderr(&o)
    );
    // A sweep directory from before sweeps kept their file is not guessed at.
    let old = dir.join("old");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("runs.csv"), "seed,run\n").unwrap();
    let o = hypermod(&["sweep", a.to_str().unwrap()], &old);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("sweep.toml"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sweep_overwrite_runs_another_sweep_there_again() {
    let _gpu = gpu_or_skip!();
    let dir = temp_dir("sweep-overwrite");
    let a = write_sweep(&dir, "a.toml", "[1]");
    let b = write_sweep(&dir, "b.toml", "[2]");
    let out = dir.join("out");
    let o = hypermod(&["sweep", a.to_str().unwrap()], &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = hypermod(&["sweep", b.to_str().unwrap()], &out);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = hypermod(&["sweep", b.to_str().unwrap(), "--overwrite"], &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    assert!(csv.lines().nth(1).unwrap().starts_with("2,"), "{csv}");
    assert_eq!(
        std::fs::read_to_string(out.join("sweep.toml")).unwrap(),
        std::fs::read_to_string(&b).unwrap()
    );
    std::fs::remove_dir_all(&dir).ok();
}
