//! Independent runs on the native backend's cores (`hypermod::experiments::run_workers`): every
//! run once, results in run order, each worker on its own one-thread native device, errors
//! reported; and `bench sweep` on the native backend, which trains a sweep's runs that way, with
//! run 1 bit-identical to the run alone.

use std::collections::BTreeSet;
use std::sync::Mutex;

use hypermod::experiments::run_workers::on_workers;
use hypermod::train::interrupt;
use hypermod::Error;

#[test]
fn every_run_once_in_order_on_one_thread_devices() {
    let seen = Mutex::new(BTreeSet::new());
    let out = on_workers(3, 10, |device, k| {
        assert_eq!(device.native_threads(), Some(1));
        assert!(seen.lock().unwrap().insert(k), "run {k} twice");
        Ok(k * k)
    })
    .unwrap();
    assert_eq!(out, (0..10).map(|k| Some(k * k)).collect::<Vec<_>>());
    assert_eq!(seen.into_inner().unwrap().len(), 10);
    assert!(on_workers(4, 0, |_, k| Ok(k)).unwrap().is_empty());
}

/// A stop asked of the calling thread (Ctrl-C, a Python `KeyboardInterrupt`) reaches the runs in
/// progress on the workers, and no new run starts.
#[test]
fn a_stop_reaches_the_workers_and_no_new_run_starts() {
    // Ctrl-C 100 ms into the batch, while the first two runs train.
    let start = std::time::Instant::now();
    let out = interrupt::with_check(
        move || start.elapsed().as_millis() > 100,
        || {
            on_workers(2, 6, |_, _| {
                // A run's training loop asks after every step; here it waits to be asked.
                let t = std::time::Instant::now();
                while !interrupt::requested() && t.elapsed().as_secs() < 10 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Ok(interrupt::requested())
            })
        },
    )
    .unwrap();
    assert_eq!(out[..2], [Some(true), Some(true)], "{out:?}");
    assert!(out[2..].iter().all(Option::is_none), "{out:?}");
}

#[test]
fn the_first_failing_run_is_the_error_and_the_others_still_run() {
    let ran = Mutex::new(0);
    let err = on_workers(2, 6, |_, k| {
        *ran.lock().unwrap() += 1;
        if k == 2 || k == 4 {
            Err(Error::InvalidArgument {
                op: "test",
                detail: format!("run {k} failed"),
            })
        } else {
            Ok(k)
        }
    })
    .unwrap_err();
    assert!(err.to_string().contains("run 2 failed"), "{err}");
    assert_eq!(*ran.lock().unwrap(), 6);
}

#[test]
fn bench_sweep_on_the_native_backend_trains_one_run_per_core() {
    let dir = std::env::temp_dir().join(format!("hypermod-workers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("sweep.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hypermod"))
        .args([
            "--device",
            "cpu",
            "--threads",
            "2",
            "bench",
            "sweep",
            "tests/data/tiny_sine.toml",
            "--runs",
            "4",
            "--sequential",
            "2",
            "--json",
            json.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["scheme"], "2 at a time", "{v}");
    assert_eq!(v["identical"], true, "{v}");
    assert!(text.contains("as a sweep (2 at a time)"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Ctrl-C during a native sweep whose runs train on the workers stops it after the runs' current
/// step (exit 130, as for one run), not after the whole batch.
#[cfg(unix)]
#[test]
fn ctrl_c_stops_a_native_sweep_on_its_workers() {
    let dir = std::env::temp_dir().join(format!("hypermod-workers-stop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let base =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_sine.toml");
    let sweep = dir.join("sweep.toml");
    // Four runs of one batch key, each far longer than the test waits.
    std::fs::write(
        &sweep,
        format!(
            "base = \"{}\"\nseeds = [1, 2, 3, 4]\nset = [\"train.steps=1000000\", \"train.eval_every=1000\"]\n",
            base.display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hypermod"))
        .args(["--device", "cpu", "--threads", "2", "sweep"])
        .arg(&sweep)
        .arg("--out")
        .arg(dir.join("out"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first runs have checkpointed (they are training).
    let start = std::time::Instant::now();
    while !dir.join("out/000-seed=1/checkpoint.safetensors").exists() {
        assert!(start.elapsed().as_secs() < 60, "no run started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let stopped = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if stopped.elapsed().as_secs() > 30 {
            child.kill().unwrap();
            panic!("the sweep did not stop within 30 s of Ctrl-C");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted after step"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
