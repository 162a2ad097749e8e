//! The layer order of the crate's modules, and the test that holds the code to it.
//!
//! A module may use the modules of lower layers only: never one of its own layer, never
//! one above. ARCHITECTURE.md explains each layer; this table is the one the test reads,
//! so the two must change together.

/// From the bottom up. Modules on one line share a layer and must not use each other.
const LAYERS: &[&[&str]] = &[
    &["config", "systemd", "web"],
    &["telemetry"],
    &["db", "violet"],
    &["jobs", "sandbox"],
    &["work"],
    &["mirror"],
    &["search"],
    &["gauges", "notify"],
    &["lifecycle"],
    &["intake"],
    &["http", "admin"],
    &["runner"],
    &["app"],
    &["demo"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The crate modules `source` names (`crate::x`, `crate::{x, y}`), outside comments.
fn modules_used(source: &str) -> Vec<String> {
    let mut used = Vec::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            // `catalog_mirror::` from outside, or an identifier ending in `crate`, is not
            // this crate's path.
            let before = &rest[..at];
            rest = &rest[at + "crate::".len()..];
            if before.ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                used.extend(top_level_items(group).iter().filter_map(|item| {
                    let name = item.split("::").next()?.trim();
                    (!name.is_empty()).then(|| name.to_string())
                }));
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                used.push(name);
            }
        }
    }
    used
}

/// The items of a `{...}` group up to its closing brace, split at its own commas only:
/// `a::{b, c}, d}` gives `a::{b, c}` and `d`.
fn top_level_items(group: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (at, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..at]);
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    // A group that goes on to the next line: what this line holds.
    items.push(&group[start..]);
    items
}

fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut unplaced = std::collections::BTreeSet::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_str().unwrap().trim_end_matches(".rs");
        // The roots (the library's module list, the binary's entry point) and this test.
        if module == "lib" || module == "main" || module == "layering" {
            continue;
        }
        let Some(layer) = layer_of(module) else {
            unplaced.insert(module.to_string());
            continue;
        };
        let source = std::fs::read_to_string(file).unwrap();
        for used in modules_used(&source) {
            if used == module {
                continue;
            }
            match layer_of(&used) {
                Some(used_layer) if used_layer < layer => {}
                Some(used_layer) => violations.push(format!(
                    "{} uses crate::{used} (layer {used_layer}), from layer {layer}",
                    relative.display(),
                )),
                None => {
                    unplaced.insert(used);
                }
            }
        }
    }
    assert!(
        unplaced.is_empty(),
        "modules missing from LAYERS: {unplaced:?}"
    );
    assert!(
        violations.is_empty(),
        "imports against the layer order:\n{}",
        violations.join("\n")
    );
}

#[test]
fn paths_are_read_from_code_not_comments() {
    let source = "use crate::{jobs::Queue, work};\nlet x = crate::db::pool(); // crate::app\n/// `crate::cli`\nuse catalog_mirror::cli;\nuse crate::{search::{auth, filter::{self, Filter}}, web};";
    assert_eq!(
        modules_used(source),
        ["jobs", "work", "db", "search", "web"]
    );
}
