//! Sharded sweeps through the binary: `hypermod sweep FILE --shard I/N` in concurrent processes,
//! then `hypermod sweep merge`, equal to the sweep run unsharded; the refusals (bad `--shard`,
//! another shard's directory, shards of different sweeps, missing runs); and the slicing itself.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::sweep_tables::{runs_without_times, summary_without_times};
use hypermod::report::RunsTable;
use hypermod::sweep::{shard_range, Shard};

/// Four theory runs (two task lists × two seeds), all of one batch key.
const SWEEP: &str = "tests/data/sweeps/tiny_theory.toml";

fn root() -> PathBuf {
    std::env::temp_dir().join(format!("hypermod-shard-{}", std::process::id()))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn sweep_cmd(out: &Path, shard: Option<&str>) -> Command {
    let mut c = common::hypermod_bin();
    c.args(["sweep", SWEEP, "--out", path(out)]);
    if let Some(s) = shard {
        c.args(["--shard", s]);
    }
    c
}

fn ok(mut c: Command) -> String {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{c:?}\n{}", text(&out));
    text(&out)
}

/// Runs `c`, which must fail with a message (not a panic); returns its stderr.
fn fails(mut c: Command) -> String {
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{c:?} succeeded\n{}", text(&out));
    assert!(!err.contains("panicked"), "{c:?} panicked\n{err}");
    err
}

fn merge_cmd(out: &Path, dirs: &[PathBuf]) -> Command {
    let mut c = common::hypermod_bin();
    c.args(["sweep", "merge", path(out)]).args(dirs);
    c
}

/// The sweep run once unsharded (`ROOT/full`) and once as three shard processes running at the
/// same time (`ROOT/shard-0..2`), shared by the tests that need finished runs.
fn fixture() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = root();
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        ok(sweep_cmd(&root.join("full"), None));
        let children: Vec<_> = (0..3)
            .map(|i| {
                let mut c = sweep_cmd(&root.join(format!("shard-{i}")), Some(&format!("{i}/3")));
                c.stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                (i, c.spawn().unwrap())
            })
            .collect();
        for (i, child) in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "shard {i}/3\n{}", text(&out));
        }
        root
    })
}

fn shards(root: &Path, which: &[usize]) -> Vec<PathBuf> {
    which
        .iter()
        .map(|i| root.join(format!("shard-{i}")))
        .collect()
}

#[test]
fn merged_shards_equal_the_unsharded_sweep() {
    let _gpu = gpu_or_skip!();
    let root = fixture();
    let (full, merged) = (root.join("full"), root.join("merged"));
    let log = ok(merge_cmd(&merged, &shards(root, &[0, 1, 2])));
    assert!(log.contains("wrote"), "{log}");

    let want = runs_without_times(&full);
    assert_eq!(want.rows.len(), 4);
    assert_eq!(runs_without_times(&merged), want, "runs.csv, timings aside");
    assert_eq!(
        summary_without_times(&merged),
        summary_without_times(&full),
        "summary.md, timings aside"
    );
    assert_eq!(
        std::fs::read_to_string(merged.join("sweep.toml")).unwrap(),
        std::fs::read_to_string(SWEEP).unwrap()
    );
    let run = want.column("run").unwrap();
    for row in &want.rows {
        let dir = merged.join(&row[run]);
        assert!(dir.join("summary.json").exists(), "{}", dir.display());
        assert!(dir.join("config.toml").exists(), "{}", dir.display());
    }

    // Each shard holds its contiguous block of the run list, by global index, and only it.
    for (i, block) in [(0, 0..1), (1, 1..2), (2, 2..4)] {
        let dir = root.join(format!("shard-{i}"));
        let t = RunsTable::read(&dir.join("runs.csv")).unwrap();
        let names: Vec<&String> = t.rows.iter().map(|r| &r[run]).collect();
        let global: Vec<&String> = want.rows[block.clone()].iter().map(|r| &r[run]).collect();
        assert_eq!(names, global, "shard {i}/3");
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("shard.json")).unwrap())
                .unwrap();
        assert_eq!(record["index"], i);
        assert_eq!(record["count"], 3);
        assert_eq!(record["runs"], serde_json::json!(block.collect::<Vec<_>>()));
    }

    // The merged directory is the sweep's own: running the sweep there finds every run done.
    let again = ok(sweep_cmd(&merged, None));
    assert!(!again.contains("sweep run"), "{again}");
    assert_eq!(runs_without_times(&merged), want);
}

#[test]
fn a_shard_directory_refuses_another_shard_spec() {
    let _gpu = gpu_or_skip!();
    let root = fixture();
    let shard0 = root.join("shard-0");
    let err = fails(sweep_cmd(&shard0, Some("1/3")));
    assert!(
        err.contains("shard 0/3") && err.contains("--shard 0/3"),
        "{err}"
    );
    let err = fails(sweep_cmd(&shard0, Some("0/2")));
    assert!(err.contains("shard 0/3"), "{err}");
    let err = fails(sweep_cmd(&shard0, None));
    assert!(err.contains("shard 0/3"), "{err}");
    let err = fails(sweep_cmd(&root.join("full"), Some("0/3")));
    assert!(err.contains("without --shard"), "{err}");
    // The same spec continues the shard (nothing left to run).
    let again = ok(sweep_cmd(&root.join("shard-1"), Some("1/3")));
    assert!(!again.contains("sweep run"), "{again}");
}

#[test]
fn merging_with_a_missing_shard_names_the_missing_runs() {
    let _gpu = gpu_or_skip!();
    let root = fixture();
    let out = root.join("merged-missing");
    let err = fails(merge_cmd(&out, &shards(root, &[0, 2])));
    assert!(err.contains("missing runs 1 "), "{err}");
    assert!(
        err.contains("001-task.task_list=0_1_2_0_1_1_2_seed=8 (shard 1/3)"),
        "{err}"
    );
    assert!(!out.exists(), "a refused merge writes nothing");
}

#[test]
fn merging_shards_of_different_sweeps_fails() {
    let _gpu = gpu_or_skip!();
    let root = fixture();
    // A one-run sweep of the same base config, run as its only shard.
    let other_file = root.join("other.toml");
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_theory.toml");
    std::fs::write(
        &other_file,
        format!("base = {:?}\nseeds = [9]\n", path(&base)),
    )
    .unwrap();
    let other = root.join("other-shard");
    let mut c = common::hypermod_bin();
    c.args(["sweep", path(&other_file), "--out", path(&other)])
        .args(["--shard", "0/1"]);
    ok(c);
    let mut dirs = shards(root, &[0, 1]);
    dirs.push(other.clone());
    let err = fails(merge_cmd(&root.join("merged-other"), &dirs));
    assert!(err.contains(path(&other)), "names the differing dir: {err}");
    assert!(err.contains("another sweep"), "{err}");
    // An unsharded sweep directory is not a shard.
    let err = fails(merge_cmd(&root.join("merged-full"), &[root.join("full")]));
    assert!(err.contains("not a shard directory"), "{err}");
}

#[test]
fn a_shard_without_runs_succeeds() {
    // Five shards of four runs: shard 0/5 is empty (⌊0·4/5⌋ = ⌊1·4/5⌋ = 0), and a job array
    // with more tasks than runs must not fail.
    let _gpu = gpu_or_skip!();
    let dir = root().join("empty-shard");
    let _ = std::fs::remove_dir_all(&dir);
    let log = ok(sweep_cmd(&dir, Some("0/5")));
    assert!(log.contains("nothing to run"), "{log}");
    assert!(dir.join("shard.json").exists());
    assert!(!dir.join("runs.csv").exists());
}

#[test]
fn bad_shard_values_are_refused() {
    let dir = root().join("bad-shard");
    for (value, needle) in [
        ("3/3", "below the count"),
        ("5/2", "below the count"),
        ("0/0", "at least 1"),
        ("x", "is not I/N"),
        ("1", "is not I/N"),
        ("1/", "is not I/N"),
        ("-1/3", "--shard"),
        ("1/3/4", "is not I/N"),
    ] {
        let mut c = common::hypermod_bin();
        c.args(["sweep", SWEEP, "--out", path(&dir)])
            .arg(format!("--shard={value}"));
        let err = fails(c);
        assert!(err.contains(needle), "--shard {value}: {err}");
        assert!(err.contains("--shard"), "--shard {value}: {err}");
    }
    assert!(!dir.exists(), "a refused shard writes nothing");
}

#[test]
fn shard_parses_i_of_n() {
    assert_eq!(
        "2/5".parse::<Shard>().unwrap(),
        Shard { index: 2, count: 5 }
    );
    assert_eq!(" 0 / 1 ".parse::<Shard>().unwrap().to_string(), "0/1");
    for bad in ["", "/", "2", "a/b", "3/3", "0/0", "-1/2", "1.5/3"] {
        assert!(bad.parse::<Shard>().is_err(), "{bad:?} accepted");
    }
    assert!(Shard::new(4, 4).is_err());
    assert_eq!(Shard::new(1, 4).unwrap().runs(10), 2..5);
}

#[test]
fn slices_cover_every_run_once_in_contiguous_balanced_blocks() {
    for count in 1..=7 {
        for len in 0..=20 {
            let blocks: Vec<_> = (0..count).map(|i| shard_range(len, i, count)).collect();
            // Contiguous and in order: each block starts where the last ended, 0 to len.
            assert_eq!(blocks[0].start, 0, "len {len}, {count} shards");
            assert_eq!(blocks[count - 1].end, len, "len {len}, {count} shards");
            for w in blocks.windows(2) {
                assert_eq!(w[0].end, w[1].start, "len {len}, {count} shards");
            }
            // Every run in exactly one shard.
            let mut seen = vec![0; len];
            for b in &blocks {
                assert!(b.start <= b.end);
                b.clone().for_each(|j| seen[j] += 1);
            }
            assert!(seen.iter().all(|&n| n == 1), "len {len}, {count} shards");
            // Balanced by run count, and the formula ⌊i·len/N⌋.
            let sizes: Vec<usize> = blocks.iter().map(|b| b.len()).collect();
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 1, "len {len}, {count} shards: {sizes:?}");
            for (i, b) in blocks.iter().enumerate() {
                assert_eq!(b.start, i * len / count);
            }
        }
    }
    // No overflow for huge lengths.
    assert_eq!(shard_range(usize::MAX, 1, 2).end, usize::MAX);
}

/// Shards cut with different counts partition the runs differently: a `0/1` shard (what a
/// resubmission without its count runs) beside `1/3` and `2/3` is refused, naming both.
#[test]
fn merging_shards_of_different_counts_fails() {
    let _gpu = gpu_or_skip!();
    let root = fixture();
    // Shard 0/3's directory relabelled as the single shard of a 1-way split.
    let whole = root.join("shard-0-of-1");
    let _ = std::fs::remove_dir_all(&whole);
    std::fs::create_dir_all(&whole).unwrap();
    for f in ["sweep.toml", "shard.json"] {
        std::fs::copy(root.join("shard-0").join(f), whole.join(f)).unwrap();
    }
    let record = whole.join("shard.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    json["count"] = 1.into();
    std::fs::write(&record, json.to_string()).unwrap();
    let mut dirs = vec![whole.clone()];
    dirs.extend(shards(root, &[1, 2]));
    let out = root.join("merged-counts");
    let err = fails(merge_cmd(&out, &dirs));
    assert!(
        err.contains("is shard 1/3 but") && err.contains("is shard 0/1"),
        "{err}"
    );
    assert!(err.contains(path(&whole)), "{err}");
    assert!(!out.exists(), "a refused merge writes nothing");
}
