//! `hypermod bench step` accounts for what one outer step records: dispatches (in total and by
//! kernel family), FLOPs, bytes and a GPU estimate. The dispatch counts of every student's step
//! at the tiny config are pinned, at both meta-gradient orders and on every device: they are
//! deterministic, and on a GPU each dispatch costs launch time whatever its size, so a change
//! that adds dispatches must update these numbers on purpose.

mod common;

use serde_json::Value;

/// (student, meta-gradient order, dispatches of one outer step at `tests/data/tiny_hyperteacher.toml`:
/// 8 tasks × 3 inner steps).
const PINNED: [(&str, &str, u64); 8] = [
    ("hnet_linear", "first_order", 175),
    ("hnet_linear", "second_order", 466),
    ("hnet_deepmlp", "first_order", 532),
    ("hnet_deepmlp", "second_order", 1477),
    ("anil", "first_order", 79),
    ("anil", "second_order", 162),
    ("maml", "first_order", 125),
    ("maml", "second_order", 314),
];

fn bench_step(kind: &str, order: &str) -> Value {
    let dir = std::env::temp_dir().join(format!("hypermod-step-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join(format!("{kind}-{order}.json"));
    let out = common::hypermod_bin()
        .args([
            "bench",
            "step",
            "tests/data/tiny_hyperteacher.toml",
            "--set",
            &format!("model.kind={kind}"),
            "--set",
            &format!("train.meta_gradient={order}"),
            "--warmup",
            "0",
            "--steps",
            "1",
            "--json",
            json.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{kind} {order}\n{text}");
    for line in [
        "cost per step:",
        "GPU estimate H100 SXM",
        "dispatches by family: gemm",
    ] {
        assert!(text.contains(line), "{kind} {order}: no `{line}`\n{text}");
    }
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    v
}

#[test]
fn every_students_outer_step_records_its_pinned_dispatch_count() {
    let _gpu = gpu_or_skip!();
    let mut wrong = Vec::new();
    for (kind, order, want) in PINNED {
        let v = bench_step(kind, order);
        let cost = &v["cost"];
        let got = cost["dispatches"].as_u64().unwrap();
        if got != want {
            wrong.push(format!("{kind} {order}: {got} dispatches, pinned {want}"));
        }
        // The families add up to the totals.
        let fams = cost["families"].as_object().unwrap();
        let sum = |key: &str| fams.values().map(|f| f[key].as_f64().unwrap()).sum::<f64>();
        assert_eq!(sum("dispatches") as u64, got, "{kind} {order}");
        let (flops, bytes) = (
            cost["flops"].as_f64().unwrap(),
            cost["bytes"].as_f64().unwrap(),
        );
        assert!(
            (sum("flops") - flops).abs() <= 1e-9 * flops,
            "{kind} {order}"
        );
        assert!(
            (sum("bytes") - bytes).abs() <= 1e-9 * bytes,
            "{kind} {order}"
        );
        assert!(flops > 0.0 && bytes > 0.0, "{kind} {order}: {cost}");
        // Every kernel (`family::entry`) adds up to its family.
        for (family, f) in fams {
            let of_family: u64 = cost["kernels"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| k.split("::").next() == Some(family.as_str()))
                .map(|(_, v)| v["dispatches"].as_u64().unwrap())
                .sum();
            assert_eq!(Some(of_family), f["dispatches"].as_u64(), "{family}");
        }
        // Tiny steps are launch-bound by the model: most of the estimate is latency.
        for e in cost["estimates"].as_array().unwrap() {
            let (s, share) = (
                e["seconds"].as_f64().unwrap(),
                e["launch_share"].as_f64().unwrap(),
            );
            let floor = got as f64 * 5e-6;
            assert!(
                s > floor && share > 0.5 && share < 1.0,
                "{kind} {order}: {e}"
            );
        }
    }
    assert!(
        wrong.is_empty(),
        "dispatch counts changed (update PINNED on purpose):\n{}",
        wrong.join("\n")
    );
}
