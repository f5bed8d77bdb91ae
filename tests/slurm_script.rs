//! `tools/slurm_sweep.sh` as Slurm runs it (its array variables set by hand; no cluster needed):
//! which shard a task runs, and the refusals that keep a resubmission from silently running the
//! whole sweep as shard 0/1.

use std::path::PathBuf;
use std::process::{Command, Output};

fn script(env: &[(&str, &str)], out_root: &str) -> Output {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut c = Command::new("bash");
    c.arg(root.join("tools/slurm_sweep.sh"))
        .arg(root.join("tests/data/sweeps/tiny_theory.toml"))
        .arg(out_root)
        .env_remove("SHARD_COUNT")
        .env("HYPERMOD_BIN", "/bin/echo");
    for var in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_MAX",
    ] {
        c.env_remove(var);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn out_root(name: &str) -> String {
    let d = std::env::temp_dir().join(format!("hypermod-slurm-{name}-{}", std::process::id()));
    d.to_str().unwrap().to_string()
}

#[test]
fn a_full_array_runs_shard_i_of_n() {
    let root = out_root("full");
    let o = script(
        &[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "2"),
        ],
        &root,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let line = stdout(&o);
    assert!(
        line.contains(&format!("--out {root}/shard-1 --shard 1/3")),
        "{line}"
    );
}

#[test]
fn a_partial_resubmission_needs_its_shard_count() {
    let root = out_root("partial");
    // `sbatch --array=1` of a 3-shard sweep: Slurm says 1 task, 1..1.
    let partial = [
        ("SLURM_ARRAY_TASK_ID", "1"),
        ("SLURM_ARRAY_TASK_COUNT", "1"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
        ("SLURM_ARRAY_TASK_MAX", "1"),
    ];
    let o = script(&partial, &root);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.starts_with("slurm_sweep.sh: ") && err.contains("set SHARD_COUNT=N"),
        "{err}"
    );
    // `--array=0` alone would otherwise have run the whole sweep as shard 0/1.
    let zero = [
        ("SLURM_ARRAY_TASK_ID", "0"),
        ("SLURM_ARRAY_TASK_COUNT", "1"),
        ("SLURM_ARRAY_TASK_MIN", "0"),
        ("SLURM_ARRAY_TASK_MAX", "0"),
    ];
    let o = script(&zero, &root);
    assert!(o.status.success(), "a 1-task array 0..0 is a whole split");
    assert!(stdout(&o).contains("--shard 0/1"), "{}", stdout(&o));
    // With its count the resubmitted task runs its own shard.
    let mut with_count = partial.to_vec();
    with_count.push(("SHARD_COUNT", "3"));
    let o = script(&with_count, &root);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("--shard 1/3"), "{}", stdout(&o));
    // A task beyond the count is refused, naming the script (not Slurm's spool copy).
    let mut beyond = partial.to_vec();
    beyond.push(("SHARD_COUNT", "1"));
    let o = script(&beyond, &root);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("slurm_sweep.sh: task 1 is not below the shard count 1"),
        "{}",
        stderr(&o)
    );
}
