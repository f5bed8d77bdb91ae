//! `runs.csv` round trips through real CSV quoting, and `summary.md` aggregates seeds correctly.

use hypermod::experiments::hyperteacher::columns::MEASURES;
use hypermod::report::{summary_markdown, RunsTable, RunsTableError};

fn tmp(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("hypermod-runs-table-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const METRICS: [&str; 10] = [
    "final_test_loss",
    "final_test_acc",
    "final_ood_loss",
    "final_ood_acc",
    "best_test_loss",
    "best_test_acc",
    "best_ood_loss",
    "best_ood_acc",
    "decoder_r2",
    "seconds",
];

/// A sweep over a list-valued key (its values hold commas) with two seeds per grid point.
fn table() -> RunsTable {
    let header = ["model.sizes", "seed", "run"]
        .into_iter()
        .chain(METRICS)
        .map(String::from)
        .collect();
    // (grid value, seed, test acc, ood acc, test loss, ood loss, r2)
    let runs = [
        ("[1, 2]", 1, 0.50, 0.40, 1.0, 1.5, "0.5"),
        ("[1, 2]", 2, 0.70, 0.40, 1.0, 2.5, "0.7"),
        ("\"odd\" value", 1, 0.30, 0.30, 2.0, 2.0, ""),
    ];
    let rows = runs
        .iter()
        .enumerate()
        .map(|(i, (v, seed, ta, oa, tl, ol, r2))| {
            let n = |x: f64| x.to_string();
            vec![
                v.to_string(),
                seed.to_string(),
                format!("{i:03}-run"),
                n(*tl),
                n(*ta),
                n(*ol),
                n(*oa),
                n(*tl),
                n(*ta),
                n(*ol),
                n(*oa),
                r2.to_string(),
                "120.0".to_string(),
            ]
        })
        .collect();
    RunsTable { header, rows }
}

#[test]
fn cells_with_commas_and_quotes_round_trip() {
    let dir = tmp("roundtrip");
    let path = dir.join("runs.csv");
    let t = table();
    t.write(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"[1, 2]\""), "{text}");
    let back = RunsTable::read(&path).unwrap();
    assert_eq!(back, t);
    assert_eq!(back.grid_keys(), ["model.sizes"]);
    let points = back.grid_points();
    assert_eq!(points.len(), 2);
    assert_eq!(points[0].label, "[1, 2]");
    assert_eq!(points[0].rows, [0, 1]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn summary_gives_mean_and_sd_over_seeds() {
    let md = summary_markdown(&table(), MEASURES).unwrap();
    // Grid point [1, 2]: test acc 0.5/0.7 → 0.600 ± 0.141; gap acc 0.1/0.3 → +0.200 ± 0.141;
    // gap loss 0.5/1.5 → +1.000 ± 0.707 (gaps signed); R² 0.5/0.7 → 0.600 ± 0.141.
    let row = md
        .lines()
        .find(|l| l.starts_with("| [1, 2] | 2 |"))
        .unwrap_or_else(|| panic!("{md}"));
    let cells: Vec<&str> = row.split(" | ").collect();
    assert_eq!(cells[2], "0.600 ± 0.141", "{row}");
    assert_eq!(cells[3], "0.400 ± 0.000", "{row}");
    assert_eq!(cells[4], "+0.200 ± 0.141", "{row}");
    assert_eq!(cells[7], "+1.000 ± 0.707", "{row}");
    assert!(row.ends_with("0.600 ± 0.141 | 2.000 ± 0.000 |"), "{row}");
    // A grid point without decoder R² shows a dash, not NaN.
    let odd = md
        .lines()
        .find(|l| l.starts_with("| \"odd\" value | 1 |"))
        .unwrap();
    assert!(
        odd.ends_with("| – | 2.000 ± 0.000 |") && !md.contains("NaN"),
        "{odd}"
    );
    // Both the final and best sections, and one row per run.
    assert!(md.contains("at the last step") && md.contains("at the best-by-valid step"));
    assert_eq!(md.lines().filter(|l| l.ends_with("-run |")).count(), 3);
}

#[test]
fn malformed_files_are_typed_errors() {
    let dir = tmp("bad");
    let path = dir.join("runs.csv");
    let missing = RunsTable::read(&path).unwrap_err();
    assert!(matches!(missing, RunsTableError::Io { .. }), "{missing}");
    std::fs::write(&path, "a,seed,run\n1,2\n").unwrap();
    let short = RunsTable::read(&path).unwrap_err();
    assert!(matches!(short, RunsTableError::Malformed { .. }), "{short}");
    assert!(short.to_string().contains("2 cells"), "{short}");
    std::fs::write(&path, "a,seed,run\n").unwrap();
    assert!(matches!(
        RunsTable::read(&path),
        Err(RunsTableError::Empty { .. })
    ));
    // A missing metric column, then a cell that is not a number: both named in the message.
    let mut t = table();
    let gone = t.column("final_ood_acc").unwrap();
    t.header[gone] = "renamed".into();
    let err = summary_markdown(&t, MEASURES).unwrap_err();
    assert!(err.contains("final_ood_acc"), "{err}");
    let mut t = table();
    let test_acc = t.column("final_test_acc").unwrap();
    t.rows[1][test_acc] = "oops".into();
    let err = summary_markdown(&t, MEASURES).unwrap_err();
    assert!(err.contains("oops") && err.contains("run 2"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
