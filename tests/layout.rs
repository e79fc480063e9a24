//! The orchestrator's module graph has no circle, and the README's Layout section names
//! every module. The graph is read off the source: an edge from module `a` to module `b`
//! for every `crate::b` path (or a name `lib.rs` re-exports from `b`) in a file of `a`,
//! where a module is a file or folder directly under `orchestrator/src`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");

/// What `lib.rs` re-exports at the crate root, by the module that defines it.
const ROOT_NAMES: [(&str, &str); 4] = [
    ("Cde", "cde"),
    ("Config", "config"),
    ("Error", "error"),
    ("Result", "error"),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to; `None` for `lib.rs` and `main.rs`.
fn module_of(file: &Path) -> Option<String> {
    let relative = file.strip_prefix(SRC).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (name != "lib" && name != "main").then(|| name.to_owned())
}

/// The code of a file without its comments (doc links name modules without using them).
fn code(text: &str) -> String {
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The identifiers that follow `crate::`, including each item of `crate::{a, b::c}`.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    names
}

fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(Path::new(SRC), &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = module_of(file) else {
            continue;
        };
        let text = code(&std::fs::read_to_string(file).unwrap());
        let edges = graph.entry(from.clone()).or_default();
        for name in crate_paths(&text) {
            let to = ROOT_NAMES
                .iter()
                .find(|(root, _)| *root == name)
                .map_or(name.as_str(), |(_, module)| module);
            if to != from && modules.contains(to) {
                edges.insert(to.to_owned());
            }
        }
    }
    graph
}

/// A circle through `start`, if there is one.
fn circle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        let last = path.last().unwrap().clone();
        for next in graph.get(&last).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    walk(graph, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn the_module_graph_has_no_circle() {
    let graph = module_graph();
    assert!(graph.len() > 10, "modules found: {:?}", graph.keys());
    for module in graph.keys() {
        if let Some(circle) = circle_from(&graph, module) {
            panic!(
                "modules depend on each other in a circle: {}",
                circle.join(" -> ")
            );
        }
    }
}

#[test]
fn the_domain_types_depend_on_no_other_module() {
    let graph = module_graph();
    assert_eq!(graph["model"], BTreeSet::new(), "model/ is types only");
}

#[test]
fn a_circle_would_be_found() {
    let graph = BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]);
    assert_eq!(circle_from(&graph, "a").unwrap(), ["a", "b", "c", "a"]);
    let paths =
        crate_paths("use crate::{error::Error, model::{Run}, Cde};\nlet x = crate::run::f();");
    assert!(paths.contains("error") && paths.contains("model") && paths.contains("run"));
}

#[test]
fn the_readme_layout_names_every_module() {
    let readme = std::fs::read_to_string(README).unwrap();
    let layout = readme
        .split("\n## Layout")
        .nth(1)
        .expect("the README has a Layout section");
    let layout = layout.split("\n## ").next().unwrap();
    let missing: Vec<_> = module_graph()
        .into_keys()
        .filter(|module| {
            let folder = Path::new(SRC).join(module).is_dir();
            let name = if folder {
                format!("`{module}/`")
            } else {
                format!("`{module}.rs`")
            };
            !layout.contains(&name)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "modules not in the README's Layout: {missing:?}"
    );
}
