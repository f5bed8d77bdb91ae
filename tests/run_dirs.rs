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

/// One writer per directory, in one process: a second lock on a held directory is refused
/// naming the holder; dropping the first frees it.
#[test]
fn a_held_directory_refuses_a_second_lock_until_released() {
    let d = temp_dir("lock-inproc");
    let first = hypermod::run::lock_dir(&d).unwrap();
    let holder = std::fs::read_to_string(d.join(hypermod::run::LOCK_FILE)).unwrap();
    assert!(
        holder.starts_with(&format!("pid {} on ", std::process::id())),
        "{holder}"
    );
    match hypermod::run::lock_dir(&d) {
        Err(e @ hypermod::Error::DirInUse { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("in use by another hypermod process"), "{msg}");
            assert!(
                msg.contains(&format!("pid {}", std::process::id())),
                "{msg}"
            );
        }
        other => panic!("second lock not refused: {other:?}"),
    }
    drop(first);
    // Free again. Not always at once: a process that another test forks at that moment holds a
    // copy of the lock's descriptor until it execs (the lock belongs to the open file, and
    // fork shares it), so wait a bounded while.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match hypermod::run::lock_dir(&d) {
            Ok(_) => break,
            Err(hypermod::Error::DirInUse { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(e) => panic!("not freed by dropping the lock: {e}"),
        }
    }
}

/// Two real processes: while `hypermod train` runs in R, a `train --resume R` and a
/// `train --overwrite` into R are refused at once and leave R's files as they were; once the
/// first is SIGKILLed, R is free again (the OS dropped the lock with the process).
#[test]
fn a_second_writer_is_refused_and_a_killed_holder_leaves_no_stale_lock() {
    let _ = gpu_or_skip!();
    let out = temp_dir("lock-procs");
    let run = out.join("r");
    // Long enough to still be training when the others try (killed below).
    let mut first = common::hypermod_bin()
        .args(["train", TINY, "--set", "train.steps_outer=1000000", "--out"])
        .arg(&run)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = run.join(hypermod::run::LOCK_FILE);
    let want = format!("pid {} on ", first.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !std::fs::read_to_string(&lock).is_ok_and(|s| s.starts_with(&want)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run never took its lock"
        );
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended early"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let config = std::fs::read(run.join("config.toml")).unwrap();
    let resume = common::hypermod_bin()
        .args(["train", "--resume"])
        .arg(&run)
        .output()
        .unwrap();
    let err = stderr(&resume);
    assert_eq!(resume.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is in use by another hypermod process") && err.contains(&want),
        "{err}"
    );
    let mut args = vec!["train", TINY, "--overwrite"];
    args.extend(SHORT);
    let overwrite = hypermod(&args, &run);
    let err = stderr(&overwrite);
    assert_eq!(overwrite.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is in use by another hypermod process"),
        "{err}"
    );
    assert_eq!(std::fs::read(run.join("config.toml")).unwrap(), config);
    assert!(
        first.try_wait().unwrap().is_none(),
        "the refusals disturbed the first run"
    );
    // SIGKILL: no chance to clean up.
    first.kill().unwrap();
    first.wait().unwrap();
    let again = hypermod(&args, &run);
    assert!(again.status.success(), "{}", stderr(&again));
}
