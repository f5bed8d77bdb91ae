//! `tools/slurm_sweep.sh` on a real Slurm: a one-node cluster (munged, slurmctld, slurmd) started
//! by this test in a temporary directory, driven exactly as the script's header documents.
//!
//! 1. A sweep submitted as a 3-task job array with the dependent merge: the merged directory
//!    equals the sweep run unsharded, timings aside.
//! 2. The same sweep again, with task 1 cancelled after its first run finished: the merge job
//!    waits with `DependencyNeverSatisfied`; cancelled, the task resubmitted alone
//!    (`SHARD_COUNT=3 --array=1`), which trains only the runs its shard had left, and the merge
//!    submitted after it: equal to the unsharded sweep again.
//!
//! Needs root (the daemons run as root, from their own config and pid files, no systemd) and the
//! Debian packages `slurmctld slurmd slurm-client munge` (`.ci/run` installs them). Without them
//! the test is skipped with a message, except with `CI=true`, where it fails. The sweep trains on
//! the native CPU backend whatever `HYPERMOD_DEVICE` says: what is tested here is the
//! orchestration; the kernels are tested on every device elsewhere.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::sweep_tables::{runs_without_times, summary_without_times};

/// The programs the cluster needs.
const PROGRAMS: [&str; 8] = [
    "munged",
    "slurmctld",
    "slurmd",
    "sbatch",
    "squeue",
    "scontrol",
    "scancel",
    "sinfo",
];

/// Longest wait for a job (the whole sweep runs in seconds here).
const JOB_BOUND: Duration = Duration::from_secs(240);

/// A job state that ends a job (`scontrol`'s names).
fn is_final(state: &str) -> bool {
    !matches!(
        state,
        "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "REQUEUED"
    )
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Why the cluster cannot start here, if it cannot.
fn missing() -> Option<String> {
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1);
    if uid != 0 {
        return Some(format!("not root (uid {uid}): slurmd must run as root"));
    }
    let absent: Vec<&str> = PROGRAMS
        .into_iter()
        .filter(|p| which(p).is_none())
        .collect();
    (!absent.is_empty()).then(|| {
        format!(
            "{} not installed (apt-get install slurmctld slurmd slurm-client munge)",
            absent.join(", ")
        )
    })
}

/// A free TCP port on this host (bound once and released; the daemons take it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `done` every 50 ms until it returns `Some`, or panics with `what` after `bound`.
fn wait_for<T>(what: &str, bound: Duration, mut done: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = done() {
            return v;
        }
        assert!(start.elapsed() < bound, "waited {bound:?} for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One array task or job as `scontrol -o show job` reports it.
#[derive(Debug, Clone)]
struct JobState {
    /// `ArrayTaskId` (empty for a job that is not an array).
    task: String,
    state: String,
    reason: String,
}

/// A one-node Slurm cluster in `dir`: its daemons are stopped (by their pid files) and the
/// directory removed when dropped; after a failure the daemons' logs are printed first.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
}

impl Cluster {
    fn start(dir: PathBuf) -> Cluster {
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["munge", "state", "spool", "log"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let munge = dir.join("munge");
        // munged refuses a key or socket directory that others can write or read.
        std::fs::set_permissions(&munge, std::fs::Permissions::from_mode(0o755)).unwrap();
        let key = munge.join("munge.key");
        let mut bytes = [0u8; 1024];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").unwrap(),
            &mut bytes,
        )
        .unwrap();
        std::fs::write(&key, bytes).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let socket = munge.join("munge.sock");
        let cluster = Cluster {
            conf: dir.join("slurm.conf"),
            dir,
        };
        cluster.daemon(
            Command::new(which("munged").unwrap())
                .arg("--force")
                .arg(format!("--socket={}", socket.display()))
                .arg(format!("--key-file={}", key.display()))
                .arg(format!(
                    "--pid-file={}",
                    cluster.pid_file("munged").display()
                ))
                .arg(format!("--log-file={}", cluster.log("munged").display()))
                .arg(format!(
                    "--seed-file={}",
                    munge.join("munged.seed").display()
                )),
        );
        wait_for("munged's socket", Duration::from_secs(20), || {
            socket.exists().then_some(())
        });

        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        let host = host.trim().split('.').next().unwrap().to_string();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let d = cluster.dir.display();
        let conf = format!(
            "ClusterName=hypermodtest\n\
             SlurmctldHost={host}\n\
             SlurmctldPort={ctld}\n\
             SlurmdPort={slurmd}\n\
             AuthType=auth/munge\n\
             CredType=cred/munge\n\
             AuthInfo=socket={socket}\n\
             SlurmUser=root\n\
             SlurmdUser=root\n\
             StateSaveLocation={d}/state\n\
             SlurmdSpoolDir={d}/spool\n\
             SlurmctldPidFile={ctld_pid}\n\
             SlurmdPidFile={slurmd_pid}\n\
             SlurmctldLogFile={ctld_log}\n\
             SlurmdLogFile={slurmd_log}\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_CPU\n\
             MpiDefault=none\n\
             ReturnToService=2\n\
             SchedulerType=sched/backfill\n\
             JobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\n\
             NodeName={host} CPUs={cpus} State=UNKNOWN\n\
             PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
            ctld = free_port(),
            slurmd = free_port(),
            socket = socket.display(),
            ctld_pid = cluster.pid_file("slurmctld").display(),
            slurmd_pid = cluster.pid_file("slurmd").display(),
            ctld_log = cluster.log("slurmctld").display(),
            slurmd_log = cluster.log("slurmd").display(),
        );
        std::fs::write(&cluster.conf, conf).unwrap();
        // -i: no state from an earlier cluster.
        cluster.daemon(cluster.slurm("slurmctld").arg("-i"));
        cluster.daemon(&mut cluster.slurm("slurmd"));
        wait_for("the node to be idle", Duration::from_secs(60), || {
            let out = cluster
                .slurm("sinfo")
                .args(["-h", "-o", "%t"])
                .output()
                .ok()?;
            (String::from_utf8_lossy(&out.stdout).trim() == "idle").then_some(())
        });
        cluster
    }

    fn pid_file(&self, daemon: &str) -> PathBuf {
        self.dir.join(format!("{daemon}.pid"))
    }

    fn log(&self, daemon: &str) -> PathBuf {
        self.dir.join("log").join(format!("{daemon}.log"))
    }

    /// A Slurm program (client or daemon) reading this cluster's config.
    fn slurm(&self, program: &str) -> Command {
        let mut c = Command::new(which(program).unwrap());
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// Starts a daemon that forks into the background and writes its pid file.
    fn daemon(&self, c: &mut Command) {
        let out = c.output().unwrap();
        assert!(out.status.success(), "{c:?}\n{}", text(&out));
    }

    /// Submits with `sbatch --parsable ARGS` (in `self.dir`, where the jobs' output files go)
    /// and returns the job id.
    fn sbatch(&self, env: &[(&str, &str)], args: &[&str]) -> String {
        let mut c = self.slurm("sbatch");
        c.current_dir(&self.dir).arg("--parsable").args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{c:?}\n{}", text(&out));
        // `--parsable` prints `JOBID` or `JOBID;CLUSTER`.
        let id = String::from_utf8_lossy(&out.stdout);
        id.trim().split(';').next().unwrap().to_string()
    }

    /// The states of job `id` (every task of an array job).
    fn states(&self, id: &str) -> Vec<JobState> {
        let out = self
            .slurm("scontrol")
            .args(["-o", "show", "job", id])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scontrol show job {id}\n{}",
            text(&out)
        );
        let field = |line: &str, name: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .unwrap_or("")
                .to_string()
        };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| JobState {
                task: field(l, "ArrayTaskId"),
                state: field(l, "JobState"),
                reason: field(l, "Reason"),
            })
            .collect()
    }

    /// Waits until every task of job `id` has ended, or waits on a dependency that can never be
    /// met (it would wait forever); returns their states.
    fn wait_ended(&self, id: &str) -> Vec<JobState> {
        wait_for(&format!("job {id} to end"), JOB_BOUND, || {
            let states = self.states(id);
            states
                .iter()
                .all(|s| is_final(&s.state) || s.reason == "DependencyNeverSatisfied")
                .then_some(states)
        })
    }

    /// Waits until job `id` ends and asserts that every task of it completed.
    fn wait_completed(&self, id: &str) {
        let states = self.wait_ended(id);
        assert!(
            states.iter().all(|s| s.state == "COMPLETED"),
            "job {id}: {states:?}\n{}",
            self.job_outputs()
        );
    }

    fn scancel(&self, id: &str) {
        let out = self.slurm("scancel").arg(id).output().unwrap();
        assert!(out.status.success(), "scancel {id}\n{}", text(&out));
    }

    /// Every job's output file, for failure messages.
    fn job_outputs(&self) -> String {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        names.sort();
        names
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "out"))
            .map(|p| {
                format!(
                    "--- {}\n{}",
                    p.display(),
                    std::fs::read_to_string(p).unwrap_or_default()
                )
            })
            .collect()
    }

    /// Stops the daemon whose pid file is `daemon`'s (SIGTERM, then SIGKILL after 10 s).
    fn stop(&self, daemon: &str) {
        let Ok(pid) = std::fs::read_to_string(self.pid_file(daemon)) else {
            return;
        };
        let pid = pid.trim();
        let alive = || Path::new(&format!("/proc/{pid}")).exists();
        let _ = Command::new("kill").args(["-TERM", pid]).status();
        let start = Instant::now();
        while alive() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for daemon in ["slurmctld", "slurmd", "munged"] {
                let log = std::fs::read_to_string(self.log(daemon)).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                eprintln!("--- {daemon} log (tail)\n{}", tail.join("\n"));
            }
            eprintln!("{}", self.job_outputs());
        }
        for daemon in ["slurmd", "slurmctld", "munged"] {
            self.stop(daemon);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Nine theory runs (three task lists × three seeds), trained one at a time (`batch = 1`) and
/// long enough (about a second each) to cancel a shard between two of them.
fn write_sweep(dir: &Path) -> PathBuf {
    let base = repo().join("tests/data/tiny_theory.toml");
    let sweep = format!(
        "base = \"{}\"\n\
         seeds = [7, 8, 9]\n\
         batch = 1\n\
         set = [\"train.steps=3000\", \"train.eval_every=1000\"]\n\
         [grid]\n\
         \"task.task_list\" = [\"0;1;2;0,1;1,2\", \"0,1;1,2\", \"0;1;2\"]\n",
        base.display()
    );
    let file = dir.join("sweep.toml");
    std::fs::write(&file, sweep).unwrap();
    file
}

/// The finished runs of a sweep (or shard) directory: those holding a `summary.json`.
fn finished_runs(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("summary.json").exists())
                .count()
        })
        .unwrap_or(0)
}

fn assert_same_sweep(merged: &Path, full: &Path) {
    let want = runs_without_times(full);
    assert_eq!(want.rows.len(), 9);
    assert_eq!(
        runs_without_times(merged),
        want,
        "{}: runs.csv, timings aside",
        merged.display()
    );
    assert_eq!(
        summary_without_times(merged),
        summary_without_times(full),
        "{}: summary.md, timings aside",
        merged.display()
    );
}

#[test]
fn a_sweep_on_slurm_merges_to_the_unsharded_sweep_after_a_cancelled_task() {
    if let Some(why) = missing() {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("CI=true but no Slurm cluster can start here: {why}");
        }
        eprintln!("\n!!!!!!!! [hypermod tests] SLURM TEST SKIPPED: {why} !!!!!!!!\n");
        return;
    }
    let root = std::env::temp_dir().join(format!("hypermod-slurm-{}", std::process::id()));
    let cluster = Cluster::start(root.join("cluster"));
    let sweep = write_sweep(&root);
    let bin = env!("CARGO_BIN_EXE_hypermod");
    let script = repo().join("tools/slurm_sweep.sh");
    let script = path(&script);
    // Every job inherits the submitting environment (sbatch's default --export=ALL).
    let env = [
        ("HYPERMOD_BIN", bin),
        ("HYPERMOD_DEVICE", "cpu"),
        ("HYPERMOD_THREADS", "1"),
    ];
    let submit_array = |array: &str, out_root: &Path, extra_env: &[(&str, &str)]| {
        let env: Vec<(&str, &str)> = env.iter().chain(extra_env).copied().collect();
        cluster.sbatch(
            &env,
            &[
                &format!("--array={array}"),
                "--output=slurm-%A_%a.out",
                script,
                path(&sweep),
                path(out_root),
            ],
        )
    };
    // The merge exactly as the script's header writes it, with the binary's path for `hypermod`.
    let submit_merge = |after: &str, out_root: &Path| {
        let r = out_root.display();
        cluster.sbatch(
            &env,
            &[
                &format!("--dependency=afterok:{after}"),
                "--output=merge-%j.out",
                "--wrap",
                &format!("{bin} sweep merge {r}/merged {r}/shard-*"),
            ],
        )
    };

    let full = root.join("full");
    let out = common::hypermod_bin()
        .env("HYPERMOD_DEVICE", "cpu")
        .args(["sweep", path(&sweep), "--out", path(&full)])
        .output()
        .unwrap();
    assert!(out.status.success(), "unsharded sweep\n{}", text(&out));

    // 1. Three shards and the dependent merge.
    let a = root.join("a");
    let array = submit_array("0-2", &a, &[]);
    let merge = submit_merge(&array, &a);
    cluster.wait_completed(&merge);
    cluster.wait_completed(&array);
    assert_same_sweep(&a.join("merged"), &full);

    // 2. Task 1 cancelled between two of its three runs.
    let b = root.join("b");
    let array = submit_array("0-2", &b, &[]);
    let merge = submit_merge(&array, &b);
    let shard1 = b.join("shard-1");
    wait_for("shard 1's first run", JOB_BOUND, || {
        (finished_runs(&shard1) >= 1).then_some(())
    });
    cluster.scancel(&format!("{array}_1"));
    let states = cluster.wait_ended(&array);
    let state = |task: &str| {
        states
            .iter()
            .find(|s| s.task == task)
            .unwrap_or_else(|| panic!("task {task} of {states:?}"))
            .state
            .clone()
    };
    assert_eq!(state("0"), "COMPLETED", "{states:?}");
    assert_eq!(state("1"), "CANCELLED", "{states:?}");
    assert_eq!(state("2"), "COMPLETED", "{states:?}");
    let kept = finished_runs(&shard1);
    assert!(
        (1..3).contains(&kept),
        "task 1 was cancelled after {kept} of its 3 runs: make the runs longer so that the cancel \
         lands between two of them"
    );
    // The merge can never start: it waits until cancelled.
    let waiting = wait_for(
        "the merge to wait on a dependency never satisfied",
        Duration::from_secs(60),
        || {
            let s = cluster.states(&merge);
            s.iter()
                .all(|s| s.reason == "DependencyNeverSatisfied")
                .then_some(s)
        },
    );
    assert!(waiting.iter().all(|s| s.state == "PENDING"), "{waiting:?}");
    assert!(!b.join("merged").exists());
    cluster.scancel(&merge);
    // A partial resubmission without SHARD_COUNT is refused by the script ...
    let refused = submit_array("1", &b, &[]);
    let states = cluster.wait_ended(&refused);
    assert_eq!(states[0].state, "FAILED", "{states:?}");
    let log = std::fs::read_to_string(cluster.dir.join(format!("slurm-{refused}_1.out"))).unwrap();
    assert!(log.contains("set SHARD_COUNT=N"), "{log}");
    assert_eq!(finished_runs(&shard1), kept, "the refused task trained");
    // ... and with it, trains only the runs its shard had left.
    let again = submit_array("1", &b, &[("SHARD_COUNT", "3")]);
    let merge = submit_merge(&again, &b);
    cluster.wait_completed(&merge);
    cluster.wait_completed(&again);
    let log = std::fs::read_to_string(cluster.dir.join(format!("slurm-{again}_1.out"))).unwrap();
    assert!(log.contains("shard 1/3"), "{log}");
    assert_eq!(
        log.matches("sweep run ").count(),
        3 - kept,
        "the resubmitted task trains only the runs not finished\n{log}"
    );
    assert_same_sweep(&b.join("merged"), &full);

    drop(cluster);
    let _ = std::fs::remove_dir_all(&root);
}
