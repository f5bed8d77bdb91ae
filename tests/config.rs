//! The strict configuration layer: loading, overrides, unknown keys, type errors, validation,
//! and a seeded fuzz test that no input panics.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hypermod::config::{load_toml, parse_toml, ConfigError, Schema};
use hypermod::error::report;
use hypermod::experiments::hyperteacher::tasks::TaskError;
use hypermod::experiments::hyperteacher::{HyperteacherConfig, ModelKind, Support};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

const VALID: &str = r#"
experiment = "hyperteacher"

[task]
modules = 8
max_hot = 2
layers = 2
hidden_dim = 32
chunking = false
continuous = false
support = "random"
frac_ood = 0.25
shots_support = 256
shots_query = 256

[model]
kind = "hnet_linear"
width = 128
ratio_templates = 4

[train]
seed = 2020
steps_outer = 200000
meta_batch = 128
steps_inner = 10
lr_inner = 0.3
lr_outer = 1e-3
wd_outer = 1e-2
max_grad_norm = 1.0
eval_every = 1000
eval_tasks = 1024
"#;

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hypermod-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn parse(text: &str, overrides: &[&str]) -> Result<HyperteacherConfig, ConfigError> {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    parse_toml::<HyperteacherConfig>(text, Path::new("exp.toml"), &overrides).map(|(c, _)| c)
}

fn err(text: &str, overrides: &[&str]) -> String {
    match parse(text, overrides).and_then(|c| c.validate().map(|_| c)) {
        Ok(_) => panic!("expected an error for {overrides:?}"),
        Err(e) => report(&e),
    }
}

#[test]
fn valid_config_round_trips() {
    let path = temp_file("valid.toml", VALID);
    let (cfg, table) = HyperteacherConfig::load(&path, &[]).unwrap();
    assert_eq!(cfg.task.modules, 8);
    assert_eq!(cfg.task.support, Support::Random);
    assert_eq!(cfg.model.kind, ModelKind::HnetLinear);
    assert_eq!(cfg.train.seed, 2020);
    assert_eq!(cfg.train_params().lr_outer, 1e-3);
    // The resolved table keeps the experiment key (the loader's, not the experiment's); without
    // it, it deserialises to the same config, and so does the serialised config.
    let mut table = table.clone();
    assert_eq!(
        table
            .remove("experiment")
            .and_then(|v| v.as_str().map(String::from)),
        Some("hyperteacher".to_string())
    );
    let again: HyperteacherConfig = table.try_into().unwrap();
    assert_eq!(again, cfg);
    let text = toml::to_string(&cfg.with_defaults_filled()).unwrap();
    let back = parse(&text, &[]).unwrap();
    assert_eq!(back, cfg.with_defaults_filled());
    assert_eq!(back.train_params(), cfg.train_params());
}

#[test]
fn empty_file_is_the_reference_default() {
    let cfg = parse("", &[]).unwrap();
    assert_eq!(cfg, HyperteacherConfig::default());
    cfg.validate().unwrap();
    let p = cfg.train_params();
    assert_eq!(
        (
            p.lr_inner,
            p.steps_inner,
            p.inner_batch,
            p.lr_outer,
            p.wd_outer,
            p.max_grad_norm
        ),
        (0.3, 10, 256, 1e-3, 1e-2, 1.0)
    );
    let anil = parse("", &["model.kind=anil"]).unwrap();
    let p = anil.train_params();
    assert_eq!((p.lr_inner, p.steps_inner, p.inner_batch), (0.03, 100, 64));
    assert_eq!(anil.width(), 512);
    assert_eq!(parse("", &["model.kind=maml"]).unwrap().width(), 384);
    let deep = parse("", &["model.kind=hnet_deepmlp"]).unwrap();
    assert_eq!(deep.train_params().lr_outer, 3e-3);
}

#[test]
fn schema_lists_exactly_the_serde_fields() {
    let full = toml::Table::try_from(HyperteacherConfig::default().with_defaults_filled()).unwrap();
    let schema = HyperteacherConfig::fields();
    assert_eq!(full.len(), schema.len());
    for f in schema {
        let sub = full[f.name].as_table().unwrap();
        let names: Vec<&str> = f.table.unwrap().iter().map(|f| f.name).collect();
        let mut keys: Vec<&str> = sub.keys().map(String::as_str).collect();
        let mut sorted = names.clone();
        keys.sort();
        sorted.sort();
        assert_eq!(keys, sorted, "schema of [{}]", f.name);
    }
}

#[test]
fn unknown_key_suggests_closest() {
    let text = VALID.replace("lr_outer = 1e-3", "lr_outter = 1e-3");
    let e = parse(&text, &[]).unwrap_err();
    assert!(matches!(e, ConfigError::UnknownKey { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "exp.toml: unknown key `lr_outter` in [train]; did you mean `lr_outer`?"
    );
    let e = err("[trian]\nseed = 1\n", &[]);
    assert!(
        e.contains("unknown key `trian` in the top level; did you mean `train`?"),
        "{e}"
    );
    let e = err("[task]\nzzzzzzzzzz = 1\n", &[]);
    assert!(
        e.contains("unknown key `zzzzzzzzzz` in [task]") && !e.contains("did you mean"),
        "{e}"
    );
    // Through an override, naming the argument.
    let e = err(VALID, &["train.max_grad_nrom=2"]);
    assert!(e.contains("did you mean `max_grad_norm`?"), "{e}");
    assert!(e.contains("--set train.max_grad_nrom=2"), "{e}");
}

#[test]
fn overrides_apply_before_deserialising() {
    let cfg = parse(
        VALID,
        &[
            "train.lr_outer=3e-3",
            "train.steps_outer = 5",
            "task.support=non_compositional",
            "task.continuous=true",
            "model.kind=\"anil\"",
            "train.seed=7",
        ],
    )
    .unwrap();
    assert_eq!(cfg.train.lr_outer, Some(3e-3));
    assert_eq!(cfg.train.steps_outer, Some(5));
    assert_eq!(cfg.task.support, Support::NonCompositional);
    assert!(cfg.task.continuous);
    assert_eq!(cfg.model.kind, ModelKind::Anil);
    assert_eq!(cfg.train.seed, 7);
    cfg.validate().unwrap();
    // Keys absent from the file but known to the schema, including a whole missing section.
    let cfg = parse(
        "[task]\nmodules = 6\n",
        &["train.inner_batch=32", "model.width=64"],
    )
    .unwrap();
    assert_eq!(cfg.train.inner_batch, Some(32));
    assert_eq!(cfg.model.width, Some(64));
    assert_eq!(cfg.task.modules, 6);
    // Later overrides win; the resolved table holds the override.
    let overrides = vec![
        "train.meta_batch=4".to_string(),
        "train.meta_batch=8".to_string(),
    ];
    let (cfg, table) =
        parse_toml::<HyperteacherConfig>(VALID, Path::new("exp.toml"), &overrides).unwrap();
    assert_eq!(cfg.train.meta_batch, 8);
    assert_eq!(table["train"]["meta_batch"].as_integer(), Some(8));
    // An integer is accepted for a float key.
    assert_eq!(
        parse(VALID, &["train.lr_inner=1"]).unwrap().train.lr_inner,
        Some(1.0)
    );
}

#[test]
fn array_and_table_overrides_reach_the_deserialiser() {
    // Arrays parse as TOML arrays, so a scalar key rejects them with a type error.
    let e = parse(VALID, &["task.modules=[1, 2]"]).unwrap_err();
    assert!(
        matches!(&e, ConfigError::Type { key, .. } if key == "task.modules"),
        "{e:?}"
    );
    assert!(e.to_string().contains("[1, 2]"), "{e}");
    // A whole section can be set as an inline table, and its keys are checked.
    let cfg = parse(VALID, &["model={kind = \"maml\", width = 32}"]).unwrap();
    assert_eq!(
        (cfg.model.kind, cfg.model.width),
        (ModelKind::Maml, Some(32))
    );
    let e = err(VALID, &["model={kind = \"maml\", widht = 32}"]);
    assert!(
        e.contains("unknown key `widht` in [model]; did you mean `width`?"),
        "{e}"
    );
}

#[test]
fn type_errors_name_key_expected_type_and_value() {
    let e = parse(VALID, &["train.lr_outer=fast"]).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(&e, ConfigError::Type { key, .. } if key == "train.lr_outer"),
        "{e:?}"
    );
    assert!(msg.contains("train.lr_outer") && msg.contains("\"fast\"") && msg.contains("f64"));
    assert!(msg.contains("--set train.lr_outer=fast"), "{msg}");

    let msg = err(
        &VALID.replace("steps_outer = 200000", "steps_outer = \"many\""),
        &[],
    );
    assert!(
        msg.contains("train.steps_outer") && msg.contains("\"many\""),
        "{msg}"
    );
    assert!(msg.contains("usize"), "{msg}");

    let msg = err(VALID, &["task.support=randomm"]);
    assert!(
        msg.contains("task.support") && msg.contains("randomm"),
        "{msg}"
    );
    assert!(msg.contains("non_compositional"), "{msg}");

    let msg = err(VALID, &["task.chunking=1"]);
    assert!(
        msg.contains("task.chunking") && msg.contains("bool"),
        "{msg}"
    );

    let msg = err(VALID, &["train.seed=-1"]);
    assert!(msg.contains("train.seed") && msg.contains("-1"), "{msg}");

    let msg = err("train = 3\n", &[]);
    assert!(msg.contains("`train`") && msg.contains("integer"), "{msg}");
}

#[test]
fn malformed_overrides_are_rejected() {
    for (arg, needle) in [
        ("train.lr_outer", "missing `=`"),
        ("=3", "empty key"),
        ("train..seed=3", "empty segment"),
        ("train.=3", "empty segment"),
        ("train.seed.x=3", "is a integer, not a table"),
        ("nope.seed=3", "unknown key `nope`"),
    ] {
        let e = err(VALID, &[arg]);
        assert!(e.contains(needle), "{arg}: {e}");
    }
}

#[test]
fn the_experiment_key_belongs_to_the_loader() {
    // Type-checked, never overridable, and another experiment's file is refused by this loader.
    let e = parse("experiment = 3\n", &[]).unwrap_err();
    assert!(matches!(e, ConfigError::Type { .. }), "{e:?}");
    assert!(e.to_string().contains("`experiment`"), "{e}");
    let e = parse(VALID, &["experiment=sine"]).unwrap_err();
    assert!(matches!(e, ConfigError::Override { .. }), "{e:?}");
    let path = temp_file("sine.toml", &VALID.replace("\"hyperteacher\"", "\"sine\""));
    let e = HyperteacherConfig::load(&path, &[]).unwrap_err();
    assert!(matches!(e, ConfigError::WrongExperiment { .. }), "{e:?}");
    // The typed loader accepts a file without the key (its caller chose the experiment).
    assert_eq!(
        parse(VALID, &[]).unwrap(),
        parse(&VALID.replace("experiment = \"hyperteacher\"", ""), &[]).unwrap()
    );
}

#[test]
fn missing_file_names_the_path() {
    let path = std::env::temp_dir().join("hypermod-no-such-dir/none.toml");
    let e = load_toml::<HyperteacherConfig>(&path, &[]).unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }));
    assert!(
        e.to_string().contains("hypermod-no-such-dir/none.toml"),
        "{e}"
    );
}

#[test]
fn syntax_error_names_file_and_line() {
    let e = parse("[task]\nmodules = = 3\n", &[]).unwrap_err();
    assert!(matches!(e, ConfigError::Parse { .. }));
    let msg = e.to_string();
    assert!(msg.contains("exp.toml") && msg.contains("line 2"), "{msg}");
}

#[test]
fn k_greater_than_m_is_rejected() {
    let e = err(VALID, &["task.max_hot=9"]);
    assert!(e.contains("task.max_hot") && e.contains("M = 8"), "{e}");
    let e = err(VALID, &["task.max_hot=0"]);
    assert!(e.contains("max_hot must lie in 1..=M"), "{e}");
}

#[test]
fn impossible_splits_are_rejected() {
    // connected needs K = 2, M even, M > 4.
    let cfg = parse(VALID, &["task.support=connected", "task.modules=5"]).unwrap();
    let e = cfg.validate().unwrap_err();
    assert!(
        matches!(&e, ConfigError::Section { source, .. }
            if matches!(source.downcast_ref::<TaskError>(), Some(TaskError::UnsupportedSplit { .. }))),
        "{e:?}"
    );
    parse(VALID, &["task.support=disconnected"])
        .unwrap()
        .validate()
        .unwrap();
    // A random split of a tiny space with a small fraction leaves no OOD task.
    let cfg = parse(
        VALID,
        &["task.modules=1", "task.max_hot=1", "task.frac_ood=0.1"],
    )
    .unwrap();
    let e = cfg.validate().unwrap_err();
    assert!(report(&e).contains("leaves no OOD task"), "{e}");
    // non_compositional with M = 1 holds out everything.
    let cfg = parse(
        VALID,
        &[
            "task.modules=1",
            "task.max_hot=1",
            "task.support=non_compositional",
        ],
    )
    .unwrap();
    assert!(report(&cfg.validate().unwrap_err()).contains("no training task"));
    // A space too large to enumerate.
    let e = err(VALID, &["task.modules=1000"]);
    assert!(e.contains("limit"), "{e}");
    // frac_ood strictly inside (0, 1).
    for v in ["0", "1", "nan", "inf", "-0.5"] {
        let e = err(VALID, &[&format!("task.frac_ood={v}")]);
        assert!(e.contains("task.frac_ood"), "{v}: {e}");
    }
}

#[test]
fn out_of_range_values_are_rejected() {
    for (arg, key) in [
        ("task.hidden_dim=0", "task.hidden_dim"),
        ("task.shots_support=0", "task.shots_support"),
        ("task.shots_query=0", "task.shots_query"),
        ("task.layers=0", "L ≥ 1"),
        ("model.width=0", "model.width"),
        ("model.ratio_templates=0", "model.ratio_templates"),
        ("train.steps_outer=0", "train.steps_outer"),
        ("train.meta_batch=0", "train.meta_batch"),
        ("train.steps_inner=0", "train.steps_inner"),
        ("train.inner_batch=0", "train.inner_batch"),
        ("train.lr_inner=0", "train.lr_inner"),
        ("train.lr_inner=nan", "train.lr_inner"),
        ("train.lr_outer=inf", "train.lr_outer"),
        ("train.lr_outer=-1e-3", "train.lr_outer"),
        ("train.wd_outer=-1", "train.wd_outer"),
        ("train.wd_outer=nan", "train.wd_outer"),
        ("train.max_grad_norm=0", "train.max_grad_norm"),
        ("train.eval_every=0", "train.eval_every"),
        ("train.eval_tasks=0", "train.eval_tasks"),
        ("model.width=1e9", "model.width"),
    ] {
        let e = err(VALID, &[arg]);
        assert!(e.contains(key), "{arg}: {e}");
    }
    // Validation errors from `load` name the file.
    let path = temp_file(
        "bad_range.toml",
        &VALID.replace("meta_batch = 128", "meta_batch = 0"),
    );
    let e = HyperteacherConfig::load(&path, &[]).unwrap_err();
    assert!(e.to_string().contains("bad_range.toml") && e.to_string().contains("meta_batch"));
}

// ----------------------------------------------------------------------------------------------
// Fuzz: malformed configs and overrides must give Ok or Err, never a panic.
// ----------------------------------------------------------------------------------------------

const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "3",
    "2",
    "8",
    "1e-3",
    "0.5",
    "nan",
    "-nan",
    "inf",
    "-inf",
    "1e400",
    "1e-400",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775808",
    "true",
    "false",
    "\"random\"",
    "\"connected\"",
    "\"disconnected\"",
    "\"non_compositional\"",
    "\"maml\"",
    "\"anil\"",
    "random",
    "\"\"",
    "[]",
    "[1, 2]",
    "[[1], [\"a\"]]",
    "[{a = 1}, {b = [nan]}]",
    "{}",
    "{a = 1}",
    "{kind = \"anil\"}",
    "1979-05-27T07:32:00Z",
    "\"ünïcödé ✓\"",
    "ünïcödé",
    "0x10",
    "1_000",
    "'lit'",
    "\"\"\"multi\nline\"\"\"",
];

const KEYS: &[&str] = &[
    "task",
    "model",
    "train",
    "task.modules",
    "task.max_hot",
    "task.layers",
    "task.frac_ood",
    "task.support",
    "task.shots_support",
    "model.kind",
    "model.width",
    "model.ratio_templates",
    "train.seed",
    "train.lr_outer",
    "train.lr_inner",
    "train.steps_outer",
    "train.inner_batch",
    "train.wd_outer",
    "train.lr_outter",
    "train.seed.deeper",
    "",
    ".",
    "..",
    "a.b.c.d.e.f",
    "ключ",
    "task.ü",
    "\"quoted\"",
    " task . modules ",
];

fn pick<'a>(rng: &mut ChaCha8Rng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

fn mutate_text(rng: &mut ChaCha8Rng) -> String {
    let base = VALID.to_string();
    match rng.random_range(0..10u32) {
        0 => {
            // Truncate at a random byte, keeping valid UTF-8 (VALID is ASCII).
            let cut = rng.random_range(0..=base.len());
            base[..cut].to_string()
        }
        1 => {
            // Overwrite random bytes.
            let mut bytes = base.into_bytes();
            for _ in 0..rng.random_range(1..8) {
                let i = rng.random_range(0..bytes.len());
                bytes[i] = rng.random();
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        2 | 3 => {
            // Swap the value of a random line for a value of another type / magnitude.
            let lines: Vec<String> = base
                .lines()
                .map(|l| match l.split_once(" = ") {
                    Some((k, _)) if rng.random_bool(0.3) => format!("{k} = {}", pick(rng, VALUES)),
                    _ => l.to_string(),
                })
                .collect();
            lines.join("\n")
        }
        4 => {
            // Deep nesting: arrays, inline tables or dotted table headers.
            let n = rng.random_range(1..3000usize);
            match rng.random_range(0..3u32) {
                0 => format!("{base}\nx = {}{}", "[".repeat(n), "]".repeat(n)),
                1 => format!("{base}\nx = {}1{}", "{a = ".repeat(n), "}".repeat(n)),
                _ => format!("[{}]\nk = 1\n{base}", vec!["t"; n].join(".")),
            }
        }
        5 => {
            // Empty, quoted and unicode keys.
            let extra = [
                "\"\" = 1",
                "[train]\n\"\" = 3",
                "[\"\"]",
                "ключ = 1",
                "[task]\n\"mödules\" = 4",
                "= 3",
                "[]",
                "[task]\nmodules = 4",
            ];
            format!("{base}\n{}", pick(rng, &extra))
        }
        6 => {
            // Random printable + unicode noise.
            let alphabet: Vec<char> = "[]{}=\".,'#\n abc_xyz019-+eé✓\u{0}\u{7f}ü"
                .chars()
                .collect();
            (0..rng.random_range(0..200))
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect()
        }
        7 => {
            // A minimal config with random M, K, L, split and fraction (the validator's paths).
            format!(
                "[task]\nmodules = {}\nmax_hot = {}\nlayers = {}\nsupport = \"{}\"\nfrac_ood = {}\n",
                rng.random_range(0..12u32),
                rng.random_range(0..5u32),
                rng.random_range(0..4u32),
                pick(rng, &["random", "connected", "disconnected", "non_compositional"]),
                pick(rng, &["0", "0.25", "0.9", "1", "nan", "-1", "0.001"]),
            )
        }
        8 => {
            // Duplicated sections / keys.
            format!("{base}\n{base}")
        }
        _ => base,
    }
}

fn mutate_override(rng: &mut ChaCha8Rng) -> String {
    let key = pick(rng, KEYS);
    let value = pick(rng, VALUES);
    match rng.random_range(0..6u32) {
        0 => key.to_string(),                  // `=` missing
        1 => format!("={value}"),              // empty key
        2 => format!("{key}=={value}"),        // doubled `=`
        3 => format!("{key}={value}={value}"), // `=` in the value
        4 => format!("{}={value}", vec!["a"; rng.random_range(1..500)].join(".")),
        _ => format!("{key}={value}"),
    }
}

#[test]
fn fuzz_never_panics() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_c0f1);
    let start = Instant::now();
    let (mut cases, mut panics, mut oks) = (0usize, 0usize, 0usize);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    while cases < 2_000 && start.elapsed() < Duration::from_secs(20) {
        let text = mutate_text(&mut rng);
        let overrides: Vec<String> = (0..rng.random_range(0..4))
            .map(|_| mutate_override(&mut rng))
            .collect();
        let result = std::panic::catch_unwind(|| {
            parse_toml::<HyperteacherConfig>(&text, Path::new("fuzz.toml"), &overrides)
                .and_then(|(cfg, _)| cfg.validate().map(|_| cfg))
                .map(|cfg| (cfg.train_params(), cfg.with_defaults_filled()))
                .map_err(|e| e.to_string())
        });
        match result {
            Ok(Ok(_)) => oks += 1,
            Ok(Err(msg)) => assert!(!msg.is_empty()),
            Err(_) => {
                panics += 1;
                eprintln!("PANIC on text {text:?} overrides {overrides:?}");
            }
        }
        cases += 1;
    }
    std::panic::set_hook(default_hook);
    assert!(cases >= 1_000, "only {cases} cases ran");
    assert_eq!(panics, 0, "{panics} of {cases} cases panicked");
    // The generator also exercises the success path, not only errors.
    assert!(oks > 0, "no case was valid");
}

/// Every key of `T` (sections end in `.`), sorted, as the derived schema lists them.
fn schema_keys<T: Schema>() -> Vec<String> {
    fn walk(fields: &[hypermod::config::Field], prefix: &str, out: &mut Vec<String>) {
        for f in fields {
            match f.table {
                Some(sub) => {
                    out.push(format!("{prefix}{}.", f.name));
                    walk(sub, &format!("{prefix}{}.", f.name), out);
                }
                None => out.push(format!("{prefix}{}", f.name)),
            }
        }
    }
    let mut out = Vec::new();
    walk(T::fields(), "", &mut out);
    out.sort();
    out
}

/// The schemas derived from the serde declarations equal the field lists that were written by
/// hand beside them before (pinned here when the hand lists were removed).
#[test]
fn derived_schemas_equal_the_former_hand_written_lists() {
    assert_eq!(
        schema_keys::<hypermod::experiments::hyperteacher::HyperteacherConfig>(),
        [
            "model.",
            "model.kind",
            "model.ratio_templates",
            "model.width",
            "task.",
            "task.chunking",
            "task.continuous",
            "task.frac_ood",
            "task.hidden_dim",
            "task.layers",
            "task.max_hot",
            "task.modules",
            "task.shots_query",
            "task.shots_support",
            "task.support",
            "train.",
            "train.eval_every",
            "train.eval_tasks",
            "train.inject_nan_steps",
            "train.inner_batch",
            "train.lr_inner",
            "train.lr_outer",
            "train.max_consecutive_skips",
            "train.max_grad_norm",
            "train.meta_batch",
            "train.meta_gradient",
            "train.reverse_sweep",
            "train.seed",
            "train.steps_inner",
            "train.steps_outer",
            "train.sweep_memory_mib",
            "train.wd_outer",
        ]
    );
    assert_eq!(
        schema_keys::<hypermod::experiments::sine::SineConfig>(),
        [
            "eval.",
            "eval.n_test",
            "eval.n_valid",
            "eval.ood_scale",
            "eval.threshold",
            "kernel_init.",
            "kernel_init.batch",
            "kernel_init.lr",
            "kernel_init.ridge",
            "kernel_init.steps",
            "kernel_init.target",
            "model.",
            "model.hidden",
            "model.method",
            "model.module_dim",
            "model.module_hidden",
            "model.modules",
            "task.",
            "task.amplitudes",
            "task.frequencies",
            "task.holdout_combination",
            "task.m",
            "task.module_dim",
            "task.modules",
            "task.n_train",
            "task.projections",
            "train.",
            "train.batch",
            "train.eval_every",
            "train.lr",
            "train.seed",
            "train.steps",
            "train.weight_decay",
        ]
    );
    assert_eq!(
        schema_keys::<hypermod::experiments::theory::TheoryConfig>(),
        [
            "student.",
            "student.hidden_factor",
            "student.module_factor",
            "task.",
            "task.continuous",
            "task.hidden",
            "task.inputs",
            "task.modules",
            "task.outputs",
            "task.task_list",
            "train.",
            "train.cosine_alpha",
            "train.eval_every",
            "train.eval_inputs",
            "train.eval_tasks",
            "train.inputs",
            "train.lr",
            "train.lr_inner",
            "train.meta_batch",
            "train.seed",
            "train.steps",
            "train.steps_inner",
            "train.weight_decay",
        ]
    );
}
