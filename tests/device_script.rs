//! `benches/device/run --dry-run`: the one-shot GPU run, run here with tiny sizes on lavapipe so
//! that it cannot rot before a GPU machine is lent. Every hypermod part must succeed; a peer whose
//! Python packages are missing must be recorded as skipped, with why; and what comes back is the
//! three files the device tool returns (at most 8 may).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

#[test]
fn the_device_run_dry_run_measures_every_part_and_writes_its_table() {
    let bin = env!("CARGO_BIN_EXE_hypermod");
    let lavapipe = Command::new(bin)
        .args(["--device", "lavapipe", "info"])
        .output()
        .unwrap();
    if !lavapipe.status.success() {
        let why = String::from_utf8_lossy(&lavapipe.stderr).into_owned();
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("CI=true but lavapipe is missing: {why}");
        }
        eprintln!("\n!!!!!!!! [hypermod tests] DEVICE DRY RUN SKIPPED: no lavapipe: {why}\n");
        return;
    }
    let root = std::env::temp_dir().join(format!("hypermod-device-run-{}", std::process::id()));
    let (prep, out) = (root.join("prepared"), root.join("out"));
    std::fs::create_dir_all(&prep).unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let run = Command::new("bash")
        .arg(repo.join("benches/device/run"))
        .arg("--dry-run")
        .arg(&prep)
        .arg(&out)
        .env("HYPERMOD_BIN", bin)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "{text}");

    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["log.txt", "results.json", "table.md"], "{text}");

    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["dry_run"], true);
    let parts = results["parts"].as_array().unwrap();
    let status = |name: &str| -> String {
        parts
            .iter()
            .find(|p| p["part"] == name)
            .unwrap_or_else(|| panic!("no part {name}: {parts:?}"))["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut ours: Vec<String> = ["info", "kernels", "theory_step", "sine_sweep"]
        .into_iter()
        .map(String::from)
        .collect();
    for model in ["hnet_linear", "hnet_deepmlp", "anil", "maml"] {
        for order in ["first_order", "second_order"] {
            ours.push(format!("step_{model}_{order}"));
            let step = &results[format!("step_{model}_{order}")];
            assert!(
                step["cost"]["dispatches"].as_u64().unwrap_or(0) > 0,
                "{model} {order}: {step}"
            );
        }
    }
    for name in &ours {
        assert_eq!(status(name), "ok", "{name}\n{text}");
    }
    // Peers run where their packages are, else say why not.
    let peers: Vec<&Value> = parts
        .iter()
        .filter(|p| {
            p["part"]
                .as_str()
                .is_some_and(|n| n == "torch_gemm" || n.starts_with("jax"))
        })
        .collect();
    assert!(peers.len() >= 2, "{parts:?}");
    for p in peers {
        let s = p["status"].as_str().unwrap();
        assert!(s == "ok" || s.starts_with("skipped: "), "{p}");
    }

    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    assert!(table.contains("Dry run"), "{table}");
    for needle in [
        "| hnet_linear | second_order |",
        "| maml | first_order |",
        "## GEMM",
        "Theory step:",
        "Sine sweep",
    ] {
        assert!(table.contains(needle), "no `{needle}` in\n{table}");
    }
    let _ = std::fs::remove_dir_all(&root);
}
