//! End-to-end tests of the `hypermod` binary: `info`, `bench kernels` (tiny table, JSON output),
//! the no-adapter error, a quiet start without a display, errors that name their cause once.

mod common;

use std::process::Command;

fn hypermod() -> Command {
    common::hypermod_bin()
}

#[test]
fn info_prints_adapter_limits_and_features() {
    let gpu = gpu_or_skip!();
    let out = hypermod().arg("info").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&gpu.adapter_info().name), "{text}");
    for key in [
        "backend:",
        "max_storage_buffer_binding_size",
        "max_compute_workgroup_storage_size",
        "timestamp_query",
    ] {
        assert!(text.contains(key), "missing {key}: {text}");
    }
}

#[test]
fn bench_kernels_writes_one_json_record_per_case() {
    let _gpu = gpu_or_skip!();
    let dir = std::env::temp_dir().join(format!("hypermod-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("out.json");
    let out = hypermod()
        .args([
            "bench", "kernels", "--size", "tiny", "--iters", "2", "--warmup", "1", "--json",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let records = report["records"].as_array().unwrap();
    assert_eq!(
        records.len(),
        hypermod::bench::kernel_cases(hypermod::bench::BenchSize::Tiny).len()
    );
    for r in records {
        assert!(r["ms"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["gflops"].as_f64().unwrap() >= 0.0, "{r}");
        assert!(
            ["gpu_timestamps", "wall_clock"].contains(&r["method"].as_str().unwrap()),
            "{r}"
        );
        assert!(r["kernel"].is_string() && r["shape"].is_string());
    }
    assert!(report["adapter"]["name"].is_string());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unmatched_adapter_pin_is_a_clear_error_not_a_panic() {
    // The pin names a wgpu adapter: it applies to `wgpu` and to `auto` (which must not fall
    // back to the CPU when the adapter asked for is missing); `--device cpu` ignores it.
    for device in ["wgpu", "auto"] {
        unmatched_pin_fails_clearly(device);
    }
}

fn unmatched_pin_fails_clearly(device: &str) {
    let out = hypermod()
        .arg("info")
        .env("HYPERMOD_ADAPTER", "no-such-adapter-xyz")
        .env("HYPERMOD_DEVICE", device)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no GPU adapter found") && err.contains("no-such-adapter-xyz"),
        "{err}"
    );
    assert!(
        err.contains("apt-get install mesa-vulkan-drivers libvulkan1"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn info_without_a_display_prints_nothing_but_its_output() {
    let _gpu = gpu_or_skip!();
    // A server or CI job: no Wayland session. Display probes must not reach stderr.
    let out = hypermod()
        .arg("info")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("DISPLAY")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        !err.lines().any(|l| l.trim_start().starts_with("error")),
        "stderr holds errors that are not about the command:\n{err}"
    );
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("hypermod-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn an_error_says_its_cause_once() {
    // No GPU needed: the config is read first.
    let out = hypermod()
        .args(["train", "no/such/dir/missing.toml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot read config file no/such/dir/missing.toml"),
        "{err}"
    );
    let cause = std::io::Error::from(std::io::ErrorKind::NotFound).to_string();
    let os_cause = "(os error 2)";
    assert_eq!(err.matches(os_cause).count(), 1, "cause repeated: {err}");
    assert!(err.contains(os_cause) || err.contains(&cause), "{err}");
}

#[test]
fn a_config_must_name_a_known_experiment() {
    let dir = temp_dir("experiment");
    let body = "[train]\nsteps_outer = 1\n";
    let none = dir.join("none.toml");
    std::fs::write(&none, body).unwrap();
    let typo = dir.join("typo.toml");
    std::fs::write(&typo, format!("experiment = \"hypertaecher\"\n{body}")).unwrap();
    for (file, needles) in [
        (
            &none,
            &[
                "no top-level `experiment` key",
                "known experiments: hyperteacher",
                "experiment = \"hyperteacher\"",
            ][..],
        ),
        (
            &typo,
            &[
                "unknown experiment `hypertaecher`",
                "known experiments: hyperteacher",
                "did you mean `hyperteacher`?",
            ][..],
        ),
    ] {
        for cmd in [&["train"][..], &["bench", "step"][..]] {
            let out = hypermod().args(cmd).arg(file).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{cmd:?}: {err}");
            for n in needles {
                assert!(
                    err.contains(n),
                    "{cmd:?} {}: missing {n}: {err}",
                    file.display()
                );
            }
        }
    }
    // A sweep reads its base config's experiment.
    let sweep = dir.join("sweep.toml");
    std::fs::write(&sweep, format!("base = {typo:?}\nseeds = [1]\n")).unwrap();
    let out = hypermod().arg("sweep").arg(&sweep).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("did you mean `hyperteacher`?"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bench_runs_reports_both_throughputs_and_the_bitwise_check() {
    let _gpu = gpu_or_skip!();
    let dir = temp_dir("bench-runs");
    let json = dir.join("runs.json");
    let out = hypermod()
        .args([
            "bench", "runs", "--runs", "3", "--steps", "2", "--warmup", "1",
        ])
        .args(["--width", "8", "--samples", "16", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("speedup") && text.contains("bit-identical"),
        "{text}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["runs"], 3);
    assert_eq!(r["identical"], true, "{r}");
    for key in [
        "batched_run_steps_per_s",
        "sequential_run_steps_per_s",
        "speedup",
    ] {
        assert!(r[key].as_f64().unwrap() > 0.0, "{key}: {r}");
    }
    let bad = hypermod()
        .args(["bench", "runs", "--runs", "0"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--runs and --steps must be ≥ 1"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn teacher_stats_reports_every_seed_in_range_and_reproducibly() {
    // CPU twin only: no device needed.
    let dir = temp_dir("teacher-stats");
    let run = |name: &str| {
        let path = dir.join(name);
        let out = hypermod()
            .args([
                "teacher-stats",
                "configs/hyperteacher/quick/hnet_linear.toml",
            ])
            .args(["--seeds", "3", "--tasks", "6", "--inputs", "40", "--json"])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("in-distribution: max prob"), "{text}");
        std::fs::read_to_string(&path).unwrap()
    };
    let first = run("a.json");
    assert_eq!(first, run("b.json"), "same seeds, different figures");
    let report: serde_json::Value = serde_json::from_str(&first).unwrap();
    let seeds = report["seeds"].as_array().unwrap();
    assert_eq!(seeds.len(), 3);
    let classes = 8.0f64;
    for s in seeds {
        for set in ["in_dist", "ood"] {
            let p = s[set]["mean_max_prob"].as_f64().unwrap();
            let h = s[set]["mean_entropy"].as_f64().unwrap();
            let share = s[set]["majority_class_share"].as_f64().unwrap();
            assert!(p > 1.0 / classes && p <= 1.0, "{s}");
            assert!(h >= 0.0 && h < classes.ln(), "{s}");
            assert!(share >= 1.0 / classes && share <= 1.0, "{s}");
        }
    }
    // Different teachers give different targets.
    assert_ne!(seeds[0]["in_dist"], seeds[1]["in_dist"]);
    let out = hypermod()
        .args([
            "teacher-stats",
            "configs/hyperteacher/quick/hnet_linear.toml",
        ])
        .args(["--seeds", "0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("seeds × tasks × inputs"), "{err}");
}

/// `train` and `sweep` both take a TOML file: given the other kind, each names the command that
/// takes it, rather than a key error that sends the user the wrong way.
#[test]
fn train_and_sweep_mix_ups_name_the_right_command() {
    let sweep = "configs/theory/sweeps/overlap_continuous.toml";
    for cmd in [&["train", sweep][..], &["bench", "step", sweep]] {
        let out = hypermod().args(cmd).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}: {err}");
        assert!(
            err.contains("is a sweep file (it has `seeds`), not an experiment config")
                && err.contains(&format!("run `hypermod sweep {sweep}`")),
            "{cmd:?}: {err}"
        );
    }
    let config = "configs/theory/default.toml";
    let out = hypermod().args(["sweep", config]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is an experiment config (`experiment = \"theory\"`), not a sweep file")
            && err.contains(&format!("run `hypermod train {config}`"))
            && err.contains("base = \"default.toml\""),
        "{err}"
    );
}

/// A closed stdout (`hypermod info | head -1`) ends the command quietly, killed by SIGPIPE as
/// other Unix tools are, not with a panic and a backtrace.
#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let mut child = hypermod()
        .args(["--device", "cpu", "info"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before the command prints.
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// At step 0 no training step has run: the evaluation line shows only the sets, not zeros for
/// training metrics that do not exist yet.
#[test]
fn the_step_0_line_shows_only_what_exists() {
    let _gpu = gpu_or_skip!();
    let dir = temp_dir("step0");
    let out = hypermod()
        .args([
            "train",
            "tests/data/tiny_hyperteacher.toml",
            "--set",
            "train.steps_outer=2",
            "--set",
            "train.eval_every=2",
            "--out",
            dir.join("run").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |step: &str| {
        text.lines()
            .find(|l| l.starts_with("step") && l.split_whitespace().nth(1) == Some(step))
            .unwrap_or_else(|| panic!("no step {step} line in\n{text}"))
            .to_string()
    };
    let zero = line("0");
    assert!(
        zero.contains("valid") && !zero.contains("train") && !zero.contains("support"),
        "{zero}"
    );
    assert!(line("2").contains("train "), "{text}");
}
