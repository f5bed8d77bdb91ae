//! A run writes the same run directory whether it trained alone, or as a member of a batch inside
//! a shard of a sweep (on the native backend: on one of the workers that train one run per core): `config.toml`, `metrics.jsonl`, `summary.json` (its own best step and
//! metrics, not the batch's) and `checkpoint.safetensors` (its own block of every tensor, bit for
//! bit, and its own progress), timings aside. `run.json` records the command that trained the
//! run, so it differs by design. Checked for the two experiments that batch runs (sine, theory),
//! with configs whose members pick different best steps.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hypermod::checkpoint::Checkpoint;
use hypermod::run::LOCK_FILE;
use serde_json::Value;

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(c: &mut std::process::Command) -> String {
    let out = c.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{c:?}\n{text}");
    text
}

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A JSON object without its `seconds` (wall-clock time) and `adapter` (on the native backend it
/// names the thread count, and the sweep's workers have one thread each; compared apart).
fn timeless(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("seconds");
        o.remove("adapter");
    }
    v
}

/// The adapter's name without the native backend's thread count.
fn adapter_kind(summary: &Value) -> String {
    let name = summary["adapter"].as_str().unwrap_or_default();
    name.split(" (").next().unwrap_or(name).to_string()
}

fn log(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| timeless(serde_json::from_str(l).unwrap()))
        .collect()
}

/// The checkpoint's metadata with its JSON values parsed and timings dropped.
fn progress(ck: &Checkpoint) -> Vec<(String, Value)> {
    ck.metadata
        .iter()
        .filter(|(k, _)| k.as_str() != "seconds")
        .map(|(k, v)| {
            let v = match k.as_str() {
                "train" | "last" | "best" => serde_json::from_str(v).unwrap(),
                "metrics_jsonl" => Value::Array(log(v)),
                _ => Value::String(v.clone()),
            };
            (k.clone(), v)
        })
        .collect()
}

/// A run directory's files, but the lock file (left by whichever process last trained there).
fn files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != LOCK_FILE)
        .collect()
}

/// Asserts that the run directories `member` (trained in a batch) and `alone` are the same run.
fn assert_same_run(member: &Path, alone: &Path) {
    let what = member.display();
    assert_eq!(files(member), files(alone), "{what}: files");
    assert_eq!(
        std::fs::read_to_string(member.join("config.toml")).unwrap(),
        std::fs::read_to_string(alone.join("config.toml")).unwrap(),
        "{what}: config.toml"
    );
    let (m, a) = (
        json(&member.join("summary.json")),
        json(&alone.join("summary.json")),
    );
    assert_eq!(adapter_kind(&m), adapter_kind(&a), "{what}: adapter");
    assert_eq!(
        timeless(m),
        timeless(a),
        "{what}: summary.json, timings aside"
    );
    assert_eq!(
        log(&std::fs::read_to_string(member.join("metrics.jsonl")).unwrap()),
        log(&std::fs::read_to_string(alone.join("metrics.jsonl")).unwrap()),
        "{what}: metrics.jsonl, timings aside"
    );
    let (m, a) = (
        Checkpoint::load(&member.join("checkpoint.safetensors")).unwrap(),
        Checkpoint::load(&alone.join("checkpoint.safetensors")).unwrap(),
    );
    assert_eq!(
        m.tensors.keys().collect::<Vec<_>>(),
        a.tensors.keys().collect::<Vec<_>>(),
        "{what}: checkpoint tensors"
    );
    for (name, (shape, values)) in &m.tensors {
        let (a_shape, a_values) = &a.tensors[name];
        assert_eq!(shape, a_shape, "{what}: checkpoint tensor {name}'s shape");
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(values),
            bits(a_values),
            "{what}: checkpoint tensor {name}"
        );
    }
    assert_eq!(
        progress(&m),
        progress(&a),
        "{what}: checkpoint progress, timings aside"
    );
}

/// Runs shard 1/2 of the sweep `sweep` (its members train as one batch), then trains every run
/// of the shard alone from its `config.toml` and compares the directories. Returns the members'
/// best steps.
fn check(name: &str, sweep: &str) -> Vec<u64> {
    let root = std::env::temp_dir().join(format!("hypermod-members-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let file = root.join("sweep.toml");
    std::fs::write(&file, sweep).unwrap();
    let shard = root.join("shard-1");
    let log = ok(common::hypermod_bin().args([
        "sweep",
        path(&file),
        "--shard",
        "1/2",
        "--out",
        path(&shard),
    ]));
    assert!(log.contains(common::batch_line()), "{log}");
    let mut members: Vec<PathBuf> = std::fs::read_dir(&shard)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("summary.json").exists())
        .collect();
    members.sort();
    assert!(members.len() >= 3, "{members:?}");
    // The batch's listing names its members inside the sweep directory, not by this path (on
    // the native backend the runs train one per core, without a batch directory).
    if let Ok(dirs) = std::fs::read_dir(shard.join("batches")) {
        let batches: Vec<PathBuf> = dirs.map(|e| e.unwrap().path()).collect();
        let listing = std::fs::read_to_string(batches[0].join("runs.txt")).unwrap();
        assert!(!listing.contains(path(&root)), "{listing}");
        for line in listing.lines() {
            assert!(shard.join(line).join("summary.json").exists(), "{line}");
        }
    } else {
        assert!(common::gpu().is_some_and(|g| g.is_native()), "no batches/");
    }
    let mut best_steps = Vec::new();
    for (i, member) in members.iter().enumerate() {
        let alone = root.join(format!("alone-{i}"));
        ok(common::hypermod_bin().args([
            "train",
            path(&member.join("config.toml")),
            "--out",
            path(&alone),
        ]));
        assert_same_run(member, &alone);
        best_steps.push(
            json(&member.join("summary.json"))["best_step"]
                .as_u64()
                .unwrap(),
        );
    }
    let _ = std::fs::remove_dir_all(&root);
    best_steps
}

/// The members must not all pick the same best step, or per-run selection is not exercised.
fn assert_steps_differ(name: &str, steps: &[u64]) {
    let distinct: BTreeSet<_> = steps.iter().collect();
    assert!(
        distinct.len() > 1,
        "{name}: every member's best step is {steps:?}"
    );
}

#[test]
fn a_sine_run_is_the_same_run_alone_and_in_a_batch_in_a_shard() {
    let _gpu = gpu_or_skip!();
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_sine.toml");
    let steps = check(
        "sine",
        &format!(
            "base = \"{}\"\nseeds = [1, 2, 3, 4, 5, 6, 7, 8]\n\
             set = [\"train.steps=24\", \"train.eval_every=2\"]\n",
            base.display()
        ),
    );
    assert_steps_differ("sine", &steps);
}

#[test]
fn a_theory_run_is_the_same_run_alone_and_in_a_batch_in_a_shard() {
    let _gpu = gpu_or_skip!();
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_theory.toml");
    let steps = check(
        "theory",
        &format!(
            "base = \"{}\"\nseeds = [7, 8, 9, 10, 11, 12]\n\
             set = [\"train.steps=30\", \"train.eval_every=1\", \"train.lr=3e-2\"]\n",
            base.display()
        ),
    );
    assert_steps_differ("theory", &steps);
}
