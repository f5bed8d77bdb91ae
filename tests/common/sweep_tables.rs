//! A sweep directory's tables compared across ways of running the sweep (unsharded, sharded and
//! merged, on a cluster): every metric, timings aside.

use std::path::Path;

use hypermod::report::RunsTable;

/// `runs.csv` with its `seconds` column blanked: wall-clock time differs between any two runs of
/// the same config (and more so between one batch of four and shards training one or two runs
/// each, three processes sharing the cores), while every metric is bit-identical.
pub fn runs_without_times(dir: &Path) -> RunsTable {
    let mut t = RunsTable::read(&dir.join("runs.csv")).unwrap();
    let seconds = t.column("seconds").unwrap();
    for row in &mut t.rows {
        row[seconds].clear();
    }
    t
}

/// `summary.md` without its `minutes` column (the mean ± sd of `seconds`; see
/// [`runs_without_times`]), every other cell as written.
pub fn summary_without_times(dir: &Path) -> String {
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    let mut out = String::new();
    let mut drop: Option<usize> = None;
    for line in md.lines() {
        if !line.starts_with('|') {
            drop = None;
            out += line;
            out += "\n";
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        // The first row of a table is its header.
        let col = *drop.get_or_insert_with(|| {
            cells
                .iter()
                .position(|c| *c == "minutes")
                .expect("summary.md has a minutes column")
        });
        let kept: Vec<&str> = cells
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != col)
            .map(|(_, c)| *c)
            .collect();
        out += &kept.join(" | ");
        out += "\n";
    }
    out
}
