//! The rules the documentation names are functions of those names in the core, so that a reader
//! who greps for a documented rule lands on it.
//!
//! Convention: each document has one section headed `Rules` (`# Rules` in the crate docs of
//! core/src/lib.rs, `## Rules` in docs/safety.md and docs/architecture.md) whose list items start
//! with the backticked names of the rules they describe, up to the first `: `. This test reads
//! those lists, requires the three to name the same rules, and requires each rule to be a
//! `fn NAME` in core/src (outside the unit tests) whose doc comment names it.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The core crate's directory; the docs are one level up.
fn core_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The rule names of the `Rules` section of a Markdown text (crate docs with their `//! `
/// prefix stripped).
fn rules_section(markdown: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut inside = false;
    for line in markdown.lines() {
        if line.starts_with('#') {
            inside = line.trim_start_matches('#').trim() == "Rules";
            continue;
        }
        let Some(item) = line.strip_prefix("- ").filter(|_| inside) else {
            continue;
        };
        let head = item.split(": ").next().unwrap_or_default();
        names.extend(
            head.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .filter(|name| !name.is_empty()),
        );
    }
    names
}

/// The crate docs of core/src/lib.rs as Markdown.
fn crate_docs() -> String {
    read(&core_dir().join("src/lib.rs"))
        .lines()
        .filter_map(|line| line.strip_prefix("//!"))
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `.rs` file under `dir`, except the unit tests (whose helpers must not count).
fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "tests") {
                source_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Where `fn name` is defined, as the file and the doc comment above it.
fn definition(name: &str, sources: &[(PathBuf, String)]) -> Option<(PathBuf, String)> {
    for (path, text) in sources {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(rest) = line.split(&format!("fn {name}")).nth(1) else {
                continue;
            };
            if !(rest.starts_with('(') || rest.starts_with('<')) {
                continue;
            }
            let doc: Vec<&str> = lines[..i]
                .iter()
                .rev()
                .map(|l| l.trim())
                .take_while(|l| l.starts_with("///") || l.starts_with("#["))
                .collect();
            return Some((path.clone(), doc.join("\n")));
        }
    }
    None
}

#[test]
fn every_documented_rule_is_a_function_of_that_name() {
    let docs = core_dir().join("../docs");
    let lists = [
        ("core/src/lib.rs (crate docs)", rules_section(&crate_docs())),
        (
            "docs/safety.md",
            rules_section(&read(&docs.join("safety.md"))),
        ),
        (
            "docs/architecture.md",
            rules_section(&read(&docs.join("architecture.md"))),
        ),
    ];
    let mut files = Vec::new();
    source_files(&core_dir().join("src"), &mut files);
    let sources: Vec<(PathBuf, String)> = files
        .into_iter()
        .map(|path| {
            let text = read(&path);
            (path, text)
        })
        .collect();

    let mut problems = Vec::new();
    for (document, names) in &lists {
        // An empty list means the marker convention broke, not that there are no rules.
        if names.len() < 10 {
            problems.push(format!(
                "{document}: its `Rules` section lists only {names:?}"
            ));
        }
        for name in names {
            match definition(name, &sources) {
                None => problems.push(format!(
                    "{document} names rule `{name}`, but there is no `fn {name}` in core/src"
                )),
                Some((path, doc)) if !doc.contains(&format!("`{name}`")) => problems.push(format!(
                    "`fn {name}` in {} has no doc comment naming rule `{name}`",
                    path.display()
                )),
                Some(_) => {}
            }
        }
    }
    let (first, first_names) = &lists[0];
    for (document, names) in &lists[1..] {
        for missing in first_names.difference(names) {
            problems.push(format!(
                "{first} lists rule `{missing}`, {document} does not"
            ));
        }
        for missing in names.difference(first_names) {
            problems.push(format!(
                "{document} lists rule `{missing}`, {first} does not"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The parser itself: names before the first `: ` of items inside the `Rules` section only.
#[test]
fn the_rules_section_is_read_by_its_marker() {
    let text = "## Before\n- `not_a_rule`: x\n## Rules\n\n- `a`, `b`: uses `c`\n  - `d` \
                continued\n- `e`: more\n## After\n- `f`: y\n";
    let names: Vec<String> = rules_section(text).into_iter().collect();
    assert_eq!(names, ["a", "b", "e"]);
}
