//! The crate's layers (ARCHITECTURE.md, "Layers"): a module may use its own layer and the layers
//! below it, never one above. Read from the source, so an upward import fails here on every
//! backend, before it can grow into an import circle.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers of `src/`, lowest first; modules in one layer may use each other.
const LAYERS: &[(&str, &[&str])] = &[
    ("device", &["native", "gpu"]),
    ("kernels", &["ops"]),
    ("layers", &["nn"]),
    ("models", &["students", "teacher", "metrics", "bench"]),
    ("files", &["fs", "config", "report"]),
    ("error", &["error"]),
    ("runs", &["run", "checkpoint"]),
    ("training", &["train"]),
    ("experiments", &["experiments"]),
    ("sweeps", &["sweep"]),
];

/// The layer index of a top-level module, `None` for the crate root (`lib.rs` only declares
/// modules) and the CLI binary (`bin/hypermod/`, a crate of its own above everything).
fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
}

/// The top-level module a file under `src/` belongs to (`ops/gemm/native.rs` → `ops`).
fn module_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The top-level modules `text` names through `crate::` paths outside comments (`use` lines and
/// paths written inline alike), with the line each is first named on.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = &rest[..at];
            rest = &rest[at + "crate::".len()..];
            // `$crate::` in macros and `hypermod_crate::` style names are not this crate's paths.
            if before.ends_with('$') || before.ends_with(|c: char| c.is_alphanumeric() || c == '_')
            {
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // `crate::{a, b}` names several.
            let names: Vec<String> = if name.is_empty() && rest.starts_with('{') {
                let inner = &rest[1..rest.find('}').unwrap_or(rest.len())];
                inner
                    .split(',')
                    .map(|s| s.trim().split("::").next().unwrap_or("").to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            } else {
                vec![name]
            };
            for n in names {
                if seen.insert(n.clone()) {
                    out.push((i + 1, n));
                }
            }
        }
    }
    out
}

/// Every import in `files` (path under `src/`, text) from a lower layer to a higher one.
fn upward_imports(files: &[(PathBuf, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (rel, text) in files {
        let module = module_of(rel);
        let Some(own) = layer_of(&module) else {
            continue;
        };
        for (line, used) in crate_paths(text) {
            // Re-exported items of the crate root (`crate::Error`, `crate::Result`) are `error`.
            let used = match used.as_str() {
                "Error" | "Result" => "error".to_string(),
                other => other.to_string(),
            };
            match layer_of(&used) {
                Some(theirs) if theirs > own => problems.push(format!(
                    "src/{}:{line}: `{module}` ({}) uses `crate::{used}` ({}), a higher layer",
                    rel.display(),
                    LAYERS[own].0,
                    LAYERS[theirs].0
                )),
                Some(_) => {}
                None if used == "uniform" => {} // the `uniform!` macro, exported at the root
                None => problems.push(format!(
                    "src/{}:{line}: `crate::{used}` is in no layer; add its module to LAYERS",
                    rel.display()
                )),
            }
        }
    }
    problems
}

fn source_files() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().and_then(|e| e.to_str()) == Some("rs") {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

#[test]
fn no_module_imports_from_a_higher_layer() {
    let files = source_files();
    assert!(files.len() > 50, "read only {} files", files.len());
    let problems = upward_imports(&files);
    assert!(
        problems.is_empty(),
        "imports against the layering (ARCHITECTURE.md, \"Layers\"):\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn every_top_level_module_has_a_layer() {
    let modules: BTreeSet<String> = source_files()
        .iter()
        .map(|(rel, _)| module_of(rel))
        .filter(|m| m != "lib" && m != "bin")
        .collect();
    let missing: Vec<&String> = modules.iter().filter(|m| layer_of(m).is_none()).collect();
    assert!(missing.is_empty(), "modules in no layer: {missing:?}");
}

/// The check itself: an upward `use`, an inline upward path and a brace group are caught; a
/// downward import, a comment and `$crate::` are not.
#[test]
fn an_upward_import_fails_the_check() {
    let file = |rel: &str, text: &str| (PathBuf::from(rel), text.to_string());
    let bad = [
        file("ops/gemm.rs", "use crate::experiments::Kind;\n"),
        file("nn/dense.rs", "fn f() -> crate::Error { todo!() }\n"),
        file("gpu/tensor.rs", "use crate::{ops::Real, train::runner};\n"),
    ];
    let problems = upward_imports(&bad);
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert!(problems[0].contains("src/ops/gemm.rs:1: `ops` (kernels) uses `crate::experiments`"));
    assert!(problems[1].contains("uses `crate::error` (error)"));
    let fine = [
        file(
            "train/meta.rs",
            "use crate::ops::gemm;\nuse crate::{gpu::Device, nn::Dense};\n",
        ),
        file(
            "ops/gemm.rs",
            "// see crate::experiments\n$crate::gpu::Uniform\n",
        ),
    ];
    assert_eq!(upward_imports(&fine), Vec::<String>::new());
}
