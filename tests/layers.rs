//! The crate's layers, checked from its source: data flows one way (source → store →
//! model → outputs), and the imports must say so. Each top-level module has a layer;
//! a module may name (`crate::x`) only modules of lower layers, so there can be no
//! circle between modules and nothing lower reaches up. Test code is left out: a
//! test may drive its module from above (the model's tests replay the scenario
//! suite, for one).
//!
//! A new module must be given a layer here; that is the point.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules by layer, lowest first. `model` is pure math and imports
/// nothing of the crate; `units` and `vocab` are the shared vocabulary.
const LAYERS: &[&[&str]] = &[
    &["units", "model"],
    &["vocab"],
    &["source"],
    &["store", "sim"],
    &["report"],
    &["explain", "plot"],
    &["telemetry"],
    &["notify"],
    &["config"],
    &["pipeline", "api", "backtest"],
    &["daemon"],
    &["cli"],
    &["logging"],
    &["app"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/notify/slack.rs` → `notify`), or
/// `None` for the crate root and the binary.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).expect("under src");
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// The file's code without comments and without test code: `#[cfg(test)]` items
/// (a `mod tests;` line, or a block up to its closing brace at the same indent).
fn non_test_code(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            let indent = line.len() - trimmed.len();
            let Some(item) = lines.next() else { break };
            if item.trim_end().ends_with('{') {
                // Up to the brace that closes the item, at the attribute's indent.
                for l in lines.by_ref() {
                    let body = l.trim_start();
                    if l.len() - body.len() == indent && body.starts_with('}') {
                        break;
                    }
                }
            }
            continue;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        out.push(line);
    }
    out
}

/// The top-level modules a piece of code names through `crate::`, including in
/// grouped imports (`use crate::{a, b::c}`).
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: the first word of each comma part, up to
            // the brace that closes the group.
            let mut depth = 0;
            let mut part = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.extend(first_word(&part));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.extend(first_word(&part));
                        part.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    part.push(c);
                }
            }
        } else {
            out.extend(first_word(rest));
        }
    }
    out
}

/// The identifier `text` starts with (after spaces), if any.
fn first_word(text: &str) -> Option<String> {
    let name: String = text
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// The module path of a file (`src/notify/slack.rs` → `notify::slack`;
/// `src/notify/mod.rs` → `notify`).
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string()
        })
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The top-level modules a file names through `super::` chains that climb to the
/// crate root (`use super::pipeline` in `src/daemon.rs`, `super::super::x` one
/// level down).
fn named_through_super(code: &str, path: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("super::") {
        let preceded = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        rest = &rest[at..];
        if preceded {
            rest = &rest["super::".len()..];
            continue;
        }
        let mut depth = path.len();
        while let Some(next) = rest.strip_prefix("super::") {
            depth = depth.saturating_sub(1);
            rest = next;
        }
        if depth == 0 {
            if let Some(group) = rest.strip_prefix('{') {
                out.extend(named_modules(&format!("crate::{{{group}")));
            } else {
                out.extend(first_word(rest));
            }
        }
    }
    out
}

/// module → the modules it names, from the source tree.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let code = non_test_code(&text).join("\n");
        let mut named = named_modules(&code);
        named.extend(named_through_super(&code, &module_path(&src, &file)));
        graph
            .entry(module.clone())
            .or_default()
            .extend(named.into_iter().filter(|m| *m != module));
    }
    graph
}

#[test]
fn every_module_has_a_layer() {
    let missing: Vec<String> = imports()
        .keys()
        .filter(|m| layer_of(m).is_none())
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "give these modules a layer in tests/layers.rs: {missing:?}"
    );
}

#[test]
fn imports_only_reach_down() {
    let mut wrong = Vec::new();
    for (module, named) in imports() {
        let Some(own) = layer_of(&module) else {
            continue;
        };
        for other in named {
            match layer_of(&other) {
                Some(layer) if layer < own => {}
                Some(_) => wrong.push(format!("{module} imports {other}")),
                None => wrong.push(format!("{module} names crate::{other}, which has no layer")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that reach up or across:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_model_imports_nothing_of_the_crate() {
    let graph = imports();
    assert_eq!(
        graph.get("model").cloned().unwrap_or_default(),
        BTreeSet::new(),
        "model/ is pure and clock-free: it takes what it needs as arguments"
    );
}

#[test]
fn files_named_tests_are_test_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for file in files
        .iter()
        .filter(|f| f.file_name().is_some_and(|n| n == "tests.rs"))
    {
        let parent = file.parent().expect("a folder").join("mod.rs");
        let text = std::fs::read_to_string(&parent)
            .unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
        assert!(
            text.contains("#[cfg(test)]\nmod tests;"),
            "{} is skipped by the layer check, so {} must declare it #[cfg(test)]",
            file.display(),
            parent.display()
        );
    }
}

#[test]
fn super_chains_that_reach_the_root_count() {
    let top = vec!["daemon".to_string()];
    let nested = vec!["notify".to_string(), "slack".to_string()];
    let names = |code: &str, path: &[String]| -> Vec<String> {
        named_through_super(code, path).into_iter().collect()
    };
    assert_eq!(names("use super::pipeline::Pipeline;", &top), ["pipeline"]);
    assert_eq!(names("use super::{api, config};", &top), ["api", "config"]);
    assert!(names("use super::{post, Event};", &nested).is_empty());
    assert_eq!(names("use super::super::daemon::X;", &nested), ["daemon"]);
}

#[test]
fn the_checker_sees_imports_and_skips_tests_and_comments() {
    let code = "use crate::{a, b::{c, d}};\n// crate::commented\nfn f() { crate::e::g(); }\n#[cfg(test)]\nmod tests {\n    use crate::t;\n} // done\nuse crate::h;\n";
    let kept = non_test_code(code).join("\n");
    let named: Vec<String> = named_modules(&kept).into_iter().collect();
    assert_eq!(named, ["a", "b", "e", "h"]);
}
