//! `hypermod plot`: learning curves of a run, the sweep summary, and bad input (no GPU).

use std::path::{Path, PathBuf};

use hypermod::experiments::plot_dir;
use hypermod::report::{plot_run, PlotError, RunsTableError};

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hypermod-plot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn example_metrics() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/plot/metrics.jsonl"),
    )
    .unwrap()
}

/// The PNG decodes and is not a single colour; returns its size.
fn check_png(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{}: not a PNG",
        path.display()
    );
    let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
    let first = *img.get_pixel(0, 0);
    let distinct = img.pixels().filter(|p| **p != first).count();
    assert!(
        distinct > 1000,
        "{}: (almost) a single colour",
        path.display()
    );
    // Text is drawn: dark (near-black) pixels exist.
    let dark = img.pixels().filter(|p| p.0.iter().all(|c| *c < 80)).count();
    assert!(
        dark > 500,
        "{}: no text/axes drawn ({dark} dark pixels)",
        path.display()
    );
    img.dimensions()
}

fn no_tmp_left(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp"), "temporary file left: {name}");
    }
}

#[test]
fn plots_the_example_run() {
    let dir = tmp_dir("run");
    std::fs::write(dir.join("metrics.jsonl"), example_metrics()).unwrap();
    let written = plot_dir(&dir).unwrap();
    assert_eq!(written.len(), 2);
    let svg = std::fs::read_to_string(dir.join("learning_curves.svg")).unwrap();
    for label in ["outer step", "query KL loss", "query accuracy"] {
        assert!(svg.contains(label), "svg lacks axis label {label}");
    }
    for set in ["valid", "test", "ood", "ood_k1", "ood_k2"] {
        // plotters writes each text element's content on its own line.
        assert!(
            svg.contains(&format!("\n{set}\n</text>")),
            "svg lacks set {set}"
        );
    }
    assert!(svg.contains(&dir.file_name().unwrap().to_string_lossy().to_string()));
    check_png(&dir.join("learning_curves.png"));
    no_tmp_left(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn log_scale_only_beyond_a_decade() {
    assert!(hypermod::report::plot::wants_log(0.01, 2.0));
    assert!(!hypermod::report::plot::wants_log(0.5, 2.0));
    assert!(!hypermod::report::plot::wants_log(0.0, 2.0));
    // A loss spanning two decades plots (log axis) with a null (diverged) value in it.
    let dir = tmp_dir("log");
    let mut text = String::new();
    for (i, loss) in ["2.0", "0.2", "null", "0.01"].iter().enumerate() {
        text.push_str(&format!(
            "{{\"step\":{},\"seconds\":1.0,\"train\":{{\"loss\":1.0,\"acc\":0.5,\"support_loss\":1.0}},\
             \"sets\":{{\"valid\":{{\"loss\":{loss},\"acc\":0.{i},\"support_loss\":1.0}}}},\"skipped_steps\":0.0}}\n",
            i * 100
        ));
    }
    std::fs::write(dir.join("metrics.jsonl"), text).unwrap();
    plot_run(&dir).unwrap();
    let svg = std::fs::read_to_string(dir.join("learning_curves.svg")).unwrap();
    assert!(svg.contains("log scale"));
    check_png(&dir.join("learning_curves.png"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn plots_a_sweep() {
    let dir = tmp_dir("sweep");
    let metrics = example_metrics();
    let mut csv = String::from(
        "model.kind,seed,run,final_test_loss,final_test_acc,final_ood_loss,final_ood_acc,best_step,decoder_r2,seconds\n",
    );
    let rows = [
        ("hnet", 0, 0.61, 0.40),
        ("hnet", 1, 0.65, 0.42),
        ("mlp", 0, 0.55, 0.30),
        ("mlp", 1, 0.50, 0.33),
    ];
    for (i, (kind, seed, test, ood)) in rows.iter().enumerate() {
        let run = format!("{i:03}-model.kind={kind}_seed={seed}");
        std::fs::create_dir_all(dir.join(&run)).unwrap();
        std::fs::write(dir.join(&run).join("metrics.jsonl"), &metrics).unwrap();
        // The sweep plot asks the runs' experiment what to compare.
        std::fs::write(
            dir.join(&run).join("config.toml"),
            "experiment = \"hyperteacher\"\n",
        )
        .unwrap();
        csv.push_str(&format!(
            "{kind},{seed},{run},1.0,{test},1.2,{ood},100,,12.0\n"
        ));
    }
    std::fs::write(dir.join("runs.csv"), csv).unwrap();
    let written = plot_dir(&dir).unwrap();
    assert_eq!(written.len(), 2 * rows.len() + 2);
    let svg = std::fs::read_to_string(dir.join("sweep.svg")).unwrap();
    for needle in [
        "hnet",
        "mlp",
        "model.kind",
        "generalisation gap",
        "ood",
        "test",
    ] {
        assert!(svg.contains(needle), "sweep.svg lacks {needle}");
    }
    check_png(&dir.join("sweep.png"));
    for i in 0..rows.len() {
        let run = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{i:03}-"))
            })
            .unwrap();
        assert!(run.join("learning_curves.svg").is_file());
        check_png(&run.join("learning_curves.png"));
    }
    no_tmp_left(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_is_a_typed_error() {
    let missing = std::env::temp_dir().join("hypermod-plot-definitely-missing");
    assert!(matches!(
        plot_dir(&missing),
        Err(PlotError::MissingDir { .. })
    ));

    let dir = tmp_dir("bad");
    assert!(matches!(
        plot_dir(&dir),
        Err(PlotError::NothingToPlot { .. })
    ));

    std::fs::write(dir.join("metrics.jsonl"), "").unwrap();
    assert!(matches!(plot_dir(&dir), Err(PlotError::Empty { .. })));

    let good = example_metrics();
    let first = good.lines().next().unwrap();
    std::fs::write(
        dir.join("metrics.jsonl"),
        format!("{first}\n{{\"step\": 3, oops\n"),
    )
    .unwrap();
    let err = plot_dir(&dir).unwrap_err();
    assert!(matches!(err, PlotError::BadLine { line: 2, .. }), "{err}");
    assert!(err.to_string().contains("metrics.jsonl:2"), "{err}");
    assert!(!dir.join("learning_curves.png").exists());

    std::fs::write(dir.join("runs.csv"), "a,b\n1,2\n").unwrap();
    let err = plot_dir(&dir).unwrap_err();
    assert!(
        matches!(err, PlotError::Runs(RunsTableError::Malformed { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("seed"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_sweep_of_an_unknown_experiment_is_a_typed_error() {
    let dir = tmp_dir("sweep-unknown");
    let run = "000-seed=0";
    std::fs::create_dir_all(dir.join(run)).unwrap();
    std::fs::write(dir.join(run).join("config.toml"), "experiment = \"nope\"\n").unwrap();
    std::fs::write(
        dir.join("runs.csv"),
        format!("seed,run,final_test_acc,final_ood_acc\n0,{run},0.5,0.4\n"),
    )
    .unwrap();
    let err = plot_dir(&dir).unwrap_err();
    assert!(
        matches!(err, hypermod::report::PlotError::Experiment { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("unknown experiment `nope`"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
