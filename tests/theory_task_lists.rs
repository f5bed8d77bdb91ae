//! The theory experiment's task lists: parsing as the authors write them, and the blessed/doomed
//! rule against every annotated list of their sweeps (spec `schug-hyperteacher.md` §7.5),
//! including the binary rank and the number of co-occurrence components the spec tabulates.

use hypermod::experiments::theory::task_list::{Label, TaskList, TaskListError};

const ONE_HOTS: &str = "0;1;2;3;4;5";
const RING: &str = "0,1;1,2;2,3;3,4;4,5;5,0";

fn list(text: &str) -> TaskList {
    TaskList::parse(text, 6).unwrap()
}

#[test]
fn discrete_overlap_sweep_lists_get_the_authors_labels() {
    use Label::*;
    let triangles = "0,1;1,2;0,2;3,4;4,5;3,5";
    // (name, list, binary rank, components, label) — spec §7.5, overlap_discrete.yml.
    let rows: Vec<(&str, String, usize, usize, Label)> = vec![
        ("D1", ONE_HOTS.into(), 6, 6, Doomed),
        ("D2", RING.into(), 5, 1, Doomed),
        ("D3", format!("{ONE_HOTS};{triangles}"), 6, 2, Doomed),
        ("D4", "0,1,2;3,4,5".into(), 2, 2, Doomed),
        (
            "D5",
            "0,1,2;1,2,3;2,3,4;3,4,5;4,5,0;5,0,1".into(),
            4,
            1,
            Doomed,
        ),
        // D3's task set written with triples; repeated indices collapse.
        (
            "D6",
            "0,0,0;1,1,1;2,2,2;3,3,3;4,4,4;5,5,5;0,1,1;1,2,2;0,2,2;3,4,4;4,5,5;3,5,5".into(),
            6,
            2,
            Doomed,
        ),
        ("D7", "0,1,2,3,4,5".into(), 1, 1, Doomed),
        ("B1", format!("{ONE_HOTS};{RING}"), 6, 1, Blessed),
        ("B2", format!("{ONE_HOTS};0,1,2;2,3,4;4,5,0"), 6, 1, Blessed),
        (
            "B3",
            format!("{ONE_HOTS};0,1,2;1,2,4;2,3,4;3,4,5;4,5,0;5,0,1"),
            6,
            1,
            Blessed,
        ),
        ("B4", format!("{ONE_HOTS};0,1,2,3,4,5"), 6, 1, Blessed),
    ];
    for (name, text, rank, components, label) in rows {
        let l = list(&text);
        assert_eq!(l.binary_rank(), rank, "{name} rank");
        assert_eq!(l.components(), components, "{name} components");
        assert_eq!(l.label(false), label, "{name} label");
    }
}

#[test]
fn continuous_overlap_sweep_lists_get_the_authors_labels() {
    use Label::*;
    // Spec §7.5, overlap_continuous.yml: covered and connected is blessed.
    let rows = [
        ("D1", ONE_HOTS.to_string(), Doomed),
        ("D2", "0,1;1,2;2,0;3,4;4,5;5,3".into(), Doomed),
        ("D3", "0,1,2;3,4,5".into(), Doomed),
        ("D4", "0,1,2;3,4,5;0,1;1,2;0,2;3,4;4,5;3,5".into(), Doomed),
        ("B1", RING.into(), Blessed),
        ("B2", "0,1,2;2,3,4;4,5,0".into(), Blessed),
        ("B3", "0,1,2;1,2,4;2,3,4;3,4,5;4,5,0;5,0,1".into(), Blessed),
        ("B4", "0,1,2,3,4,5".into(), Blessed),
    ];
    for (name, text, label) in rows {
        let l = list(&text);
        assert!(l.covers_all(), "{name} covers every module");
        assert_eq!(l.label(true), label, "{name}");
    }
    // The ring: doomed with discrete latents (rank 5), blessed with continuous ones.
    assert_eq!(list(RING).label(false), Doomed);
    // The authors' default list (two disjoint triangles) is doomed either way.
    let default = list("0,1;1,2;2,0;3,4;4,5;5,3");
    assert_eq!(
        (default.label(false), default.label(true)),
        (Doomed, Doomed)
    );
}

#[test]
fn parsing_collapses_repeats_and_rejects_bad_lists() {
    let l = TaskList::parse(" 0, 0 ;1,2 ", 3).unwrap();
    assert_eq!(l.tasks().collect::<Vec<_>>(), vec![vec![0], vec![1, 2]]);
    assert!(l.covers_all());
    assert!(matches!(
        TaskList::parse("", 6),
        Err(TaskListError::BadIndex { task: 0, .. })
    ));
    assert!(matches!(
        TaskList::parse("0,1;1,x", 6),
        Err(TaskListError::BadIndex { task: 1, .. })
    ));
    assert!(matches!(
        TaskList::parse("0,6", 6),
        Err(TaskListError::OutOfRange { index: 6, .. })
    ));
    assert!(matches!(
        TaskList::parse("0;;1", 6),
        Err(TaskListError::BadIndex { task: 1, .. })
    ));
    let e = TaskList::parse("0,9", 6).unwrap_err().to_string();
    assert!(e.contains("module 9") && e.contains("0..6"), "{e}");
    // A module no task touches is its own component: not connected, not covering.
    let partial = TaskList::parse("0,1;1,2", 4).unwrap();
    assert_eq!(partial.components(), 2);
    assert!(!partial.covers_all());
    assert_eq!(partial.label(true), Label::Doomed);
}
