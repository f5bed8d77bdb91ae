//! Independent runs on the native backend's cores (`hypermod::experiments::run_workers`): every
//! run once, results in run order, each worker on its own one-thread native device, errors
//! reported; and `bench sweep` on the native backend, which trains a sweep's runs that way, with
//! run 1 bit-identical to the run alone.

use std::collections::BTreeSet;
use std::sync::Mutex;

use hypermod::experiments::run_workers::on_workers;
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
    assert_eq!(out, (0..10).map(|k| k * k).collect::<Vec<_>>());
    assert_eq!(seen.into_inner().unwrap().len(), 10);
    assert!(on_workers(4, 0, |_, k| Ok(k)).unwrap().is_empty());
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
