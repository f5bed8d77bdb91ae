//! End-to-end tests of the `hypermod` binary: `info`, `bench kernels` (tiny table, JSON output),
//! the no-adapter error, a quiet start without a display.

mod common;

use std::process::Command;

fn hypermod() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hypermod"))
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
    let out = hypermod()
        .arg("info")
        .env("HYPERMOD_ADAPTER", "no-such-adapter-xyz")
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
