//! Golden outputs: short fixed-seed runs of every quick student config must reproduce, bit for
//! bit, the metrics pinned in `tests/golden/` on Mesa lavapipe (the CI device). Refactors keep
//! these identical; a change that is meant to move numbers re-pins them in its own commit with
//! `HYPERMOD_PIN_GOLDENS=1 cargo test --release --test golden`.
//!
//! Times (`seconds`) and the adapter name are dropped before comparing; everything else in
//! metrics.jsonl and summary.json must match exactly (floats compare as their JSON text, which
//! serde_json prints round-trip exact).

mod common;

use std::path::{Path, PathBuf};

/// Short enough for CI (about 10 s a student on lavapipe), long enough that the outer AdamW,
/// best-by-valid and the evaluation sets all move.
const OVERRIDES: &[&str] = &[
    "train.steps_outer=10",
    "train.eval_every=5",
    "train.eval_tasks=8",
];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Drops wall-clock and device-name fields, which are not part of the numbers.
fn strip(v: &mut serde_json::Value) {
    if let Some(o) = v.as_object_mut() {
        o.remove("seconds");
        o.remove("adapter");
        for (_, c) in o.iter_mut() {
            strip(c);
        }
    }
}

fn normalised(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = String::new();
    if path.extension().is_some_and(|e| e == "jsonl") {
        for l in text.lines() {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            strip(&mut v);
            out.push_str(&serde_json::to_string(&v).unwrap());
            out.push('\n');
        }
    } else {
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        strip(&mut v);
        out = serde_json::to_string_pretty(&v).unwrap();
        out.push('\n');
    }
    out
}

fn run_student(student: &str) {
    let Some(gpu) = common::gpu() else { return };
    let name = gpu.adapter_info().name.clone();
    if !name.contains("llvmpipe") {
        eprintln!("golden outputs are pinned on lavapipe; adapter {name}: skipped");
        return;
    }
    let out =
        std::env::temp_dir().join(format!("hypermod-golden-{student}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut cmd = common::hypermod_bin();
    cmd.arg("train")
        .arg(format!("configs/hyperteacher/quick/{student}.toml"))
        .arg("--out")
        .arg(&out);
    for s in OVERRIDES {
        cmd.args(["--set", s]);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pin = std::env::var("HYPERMOD_PIN_GOLDENS").is_ok_and(|v| v == "1");
    for file in ["metrics.jsonl", "summary.json"] {
        let got = normalised(&out.join(file));
        let golden = golden_dir().join(format!("{student}.{file}"));
        if pin {
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden)
            .unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
        if got != want {
            let first = got
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            panic!(
                "{student} {file} differs from the golden, first at line {}:\n got: {}\nwant: {}",
                first + 1,
                got.lines().nth(first).unwrap_or(""),
                want.lines().nth(first).unwrap_or("")
            );
        }
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn golden_hnet_linear() {
    run_student("hnet_linear");
}

#[test]
fn golden_hnet_deepmlp() {
    run_student("hnet_deepmlp");
}

#[test]
fn golden_anil() {
    run_student("anil");
}

#[test]
fn golden_maml() {
    run_student("maml");
}
