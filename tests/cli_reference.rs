//! `docs/cli.md` is the command line's reference as `hypermod cli-reference` prints it from
//! clap's own definitions: a flag added, renamed or re-documented without regenerating the page
//! fails here. Regenerate with `hypermod cli-reference > docs/cli.md` (or run this test with
//! `HYPERMOD_BLESS=1`).

use std::path::PathBuf;

#[test]
fn docs_cli_md_is_the_generated_reference() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hypermod"))
        .arg("cli-reference")
        .output()
        .unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/cli.md");
    if std::env::var("HYPERMOD_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
    }
    let page = std::fs::read_to_string(&path).unwrap();
    assert!(
        page == generated,
        "docs/cli.md differs from `hypermod cli-reference`: regenerate it with \
         `cargo run --release -- cli-reference > docs/cli.md`"
    );
    for command in [
        "train",
        "sweep",
        "sweep merge",
        "plot",
        "bench step",
        "info",
    ] {
        assert!(
            page.contains(&format!("## `hypermod {command}`")),
            "no section for {command}"
        );
    }
    assert!(
        !page.contains("cli-reference`\n"),
        "hidden commands stay out"
    );
}
