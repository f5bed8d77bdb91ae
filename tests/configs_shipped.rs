//! Every shipped experiment config loads and validates, and every shipped sweep expands into
//! valid runs (no GPU needed): a broken config in `configs/` fails here, not after hours of work.

use std::path::Path;

use hypermod::experiments::hyperteacher::HyperteacherConfig;
use hypermod::experiments::theory::TheoryConfig;
use hypermod::experiments::{hyperteacher, preference, sine, theory, ExperimentConfig};

fn toml_files(dir: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_experiment_config_loads() {
    let mut n = 0;
    for dir in [
        "configs/hyperteacher",
        "configs/hyperteacher/quick",
        "configs/preference",
        "configs/preference/quick",
        "tests/data",
    ] {
        for f in toml_files(dir) {
            // Through the CLI's loader: every shipped config names its experiment.
            let (cfg, _) = ExperimentConfig::load(&f, &[])
                .unwrap_or_else(|e| panic!("{}: {}", f.display(), hypermod::error::report(&e)));
            let name = f.to_string_lossy();
            let want = if name.contains("theory") {
                theory::NAME
            } else if name.contains("sine") {
                sine::NAME
            } else if name.contains("preference") {
                preference::NAME
            } else {
                hyperteacher::NAME
            };
            assert_eq!(cfg.kind().name(), want, "{}", f.display());
            n += 1;
        }
    }
    assert!(n >= 10, "only {n} configs found");
    for f in toml_files("configs/theory") {
        let (cfg, _) = ExperimentConfig::load(&f, &[])
            .unwrap_or_else(|e| panic!("{}: {}", f.display(), hypermod::error::report(&e)));
        assert_eq!(cfg.kind().name(), theory::NAME, "{}", f.display());
    }
    for f in toml_files("configs/sine") {
        let (cfg, _) = ExperimentConfig::load(&f, &[])
            .unwrap_or_else(|e| panic!("{}: {}", f.display(), hypermod::error::report(&e)));
        assert_eq!(cfg.kind().name(), sine::NAME, "{}", f.display());
    }
    for (model, file) in [
        ("hnet_linear", "hnet_linear"),
        ("hnet_deepmlp", "hnet_deepmlp"),
        ("anil", "anil"),
        ("maml", "maml"),
    ] {
        for dir in ["configs/hyperteacher", "configs/hyperteacher/quick"] {
            let (cfg, _) =
                HyperteacherConfig::load(Path::new(dir).join(format!("{file}.toml")), &[]).unwrap();
            assert_eq!(
                format!("{:?}", cfg.model.kind)
                    .to_lowercase()
                    .replace('_', ""),
                model.replace('_', "")
            );
        }
    }
    let (nc, _) = HyperteacherConfig::load(
        "configs/hyperteacher/quick/hnet_linear_non_compositional.toml",
        &[],
    )
    .unwrap();
    assert_eq!(format!("{:?}", nc.task.support), "NonCompositional");
}

#[test]
fn every_sweep_expands_into_valid_runs() {
    let expected = [
        ("compositional", 4 * 2 * 3),
        ("connected", 2 * 2 * 3),
        ("overparam", 2 * 5 * 6 * 3 * 3),
        ("experts_vs_ood", 4 * 3 * 5 * 3),
        // K ∈ {1, 2, 4, 6, 8} valid for M = 4: 3, M = 6: 4, M = 8: 5.
        ("experts_vs_hot", 4 * (3 + 4 + 5) * 3),
        // M = 16, K = 4 would enumerate 2516² = 6.3M tasks, past the engine's task-space cap
        // (`MAX_TASK_ENTRIES`): skipped with a message rather than exhausting host memory.
        ("experts_vs_steps", 4 * (7 * 3 - 1) * 3),
        ("experts_vs_shots", 2 * 2 * 2 * 5 * 3),
    ];
    for (name, runs) in expected {
        let path = format!("configs/hyperteacher/sweeps/{name}.toml");
        let (_, r) =
            hypermod::sweep::expand(Path::new(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(r.len(), runs, "{path}");
        let labels: std::collections::HashSet<_> = r.iter().map(|x| x.label.clone()).collect();
        assert_eq!(labels.len(), runs, "{path}: duplicate run labels");
    }
    // The theory sweeps: the authors' grids (spec §7.5) with every list's annotation.
    for (name, runs, blessed) in [
        ("overlap_discrete", 11 * 3, 4 * 3),
        ("overlap_continuous", 8 * 3, 4 * 3),
        ("quick_overlap_discrete", 11 * 3, 4 * 3),
        ("quick_overlap_continuous", 8 * 3, 4 * 3),
        ("medium_overlap_discrete", 11 * 3, 4 * 3),
        ("medium_overlap_continuous", 8 * 3, 4 * 3),
        ("overparam", 5 * 5 * 4 * 2 * 3, 5 * 5 * 4 * 2 * 3),
    ] {
        let path = format!("configs/theory/sweeps/{name}.toml");
        let (_, r) =
            hypermod::sweep::expand(Path::new(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(r.len(), runs, "{path}");
        let labels = r
            .iter()
            .filter_map(|x| x.config.get::<TheoryConfig>().map(|c| c.label().unwrap()));
        let n_blessed = labels
            .filter(|l| *l == hypermod::experiments::theory::task_list::Label::Blessed)
            .count();
        assert_eq!(n_blessed, blessed, "{path}: blessed runs");
        // Every run of an overlap sweep shares one shape, so they batch together.
        let keys: std::collections::HashSet<_> =
            r.iter().map(|x| x.config.batch_key().unwrap()).collect();
        assert_eq!(
            keys.len(),
            if name == "overparam" { 25 } else { 1 },
            "{path}"
        );
    }
    // The sine sweeps: the grid (3 methods × 8 m × 9 n × 3 seeds), one batch per
    // (method, m) — runs differing only in n and seed share every dispatch.
    for (name, runs, batches) in [
        ("sample_complexity", 3 * 8 * 9 * 3, 3 * 8),
        ("quick", 3 * 3 * 6 * 2, 3 * 3),
        ("m1024", 3 * 3, 3),
        ("monolithic_width", 7 * 3, 7),
    ] {
        let path = format!("configs/sine/sweeps/{name}.toml");
        let (_, r) =
            hypermod::sweep::expand(Path::new(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(r.len(), runs, "{path}");
        let keys: std::collections::HashSet<_> =
            r.iter().map(|x| x.config.batch_key().unwrap()).collect();
        assert_eq!(keys.len(), batches, "{path}");
    }
    // The preference sweeps: the official grids (sweeps/preference/*.yaml) and the quick one.
    for (path, runs) in [
        ("configs/preference/sweeps/compositional.toml", 4 * 2 * 6),
        ("configs/preference/sweeps/connected.toml", 2 * 2 * 6),
        (
            "configs/preference/sweeps/overparam.toml",
            2 * 3 * 3 * 4 * 3,
        ),
        (
            "configs/preference/quick/sweeps/compositional_hnet_linear.toml",
            2 * 3,
        ),
    ] {
        let (_, r) =
            hypermod::sweep::expand(Path::new(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(r.len(), runs, "{path}");
    }
    for f in toml_files("configs/hyperteacher/quick/sweeps") {
        let (_, r) = hypermod::sweep::expand(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let models = f.file_stem().unwrap() == "models";
        assert_eq!(
            r.len(),
            if models { 4 * 3 } else { 2 * 3 },
            "{}",
            f.display()
        );
    }
}

#[test]
fn a_bad_sweep_is_refused_before_any_run() {
    let dir = std::env::temp_dir().join(format!("hypermod-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = std::fs::canonicalize("tests/data/tiny_hyperteacher.toml").unwrap();
    let write = |text: &str| {
        let p = dir.join("s.toml");
        std::fs::write(&p, text).unwrap();
        p
    };
    let p = write(&format!(
        "base = {:?}\nseeds = [1]\n[grid]\n\"task.max_hot\" = [1, 9]\n",
        base
    ));
    let e = hypermod::sweep::expand(&p)
        .err()
        .expect("K = 9 > M = 3 must be refused")
        .to_string();
    assert!(e.contains("max_hot"), "{e}");
    let p = write(&format!(
        "base = {:?}\nseeds = [1]\nskip_invalid = true\n[grid]\n\"task.max_hot\" = [1, 9]\n",
        base
    ));
    assert_eq!(hypermod::sweep::expand(&p).unwrap().1.len(), 1);
    let p = write(&format!("base = {:?}\nseeds = []\n", base));
    assert!(hypermod::sweep::expand(&p).is_err());
    // `base` as a grid key picks the config per grid point; not together with a top-level one.
    let quick = std::fs::canonicalize("configs/hyperteacher/quick").unwrap();
    let (anil, maml) = (quick.join("anil.toml"), quick.join("maml.toml"));
    let p = write(&format!(
        "seeds = [1, 2]\n[grid]\nbase = [{anil:?}, {maml:?}]\n"
    ));
    let (_, runs) = hypermod::sweep::expand(&p).unwrap();
    let kinds: Vec<_> = runs
        .iter()
        .map(|r| r.config.get::<HyperteacherConfig>().unwrap().model.kind)
        .collect();
    use hypermod::experiments::hyperteacher::ModelKind::{Anil, Maml};
    assert_eq!(kinds, [Anil, Anil, Maml, Maml]);
    assert_eq!(runs[2].label, "base=maml,seed=1");
    let e = hypermod::sweep::expand(&write(&format!(
        "base = {base:?}\nseeds = [1]\n[grid]\nbase = [{anil:?}]\n"
    )))
    .err()
    .expect("two bases")
    .to_string();
    assert!(e.contains("both"), "{e}");
    let e = hypermod::sweep::expand(&write("seeds = [1]\n"))
        .err()
        .expect("no base")
        .to_string();
    assert!(e.contains("no `base`"), "{e}");
    let p = write(&format!("base = {:?}\nseeds = [1]\nsedes = [2]\n", base));
    assert!(hypermod::sweep::expand(&p)
        .err()
        .unwrap()
        .to_string()
        .contains("sedes"));
    std::fs::remove_dir_all(&dir).ok();
}
