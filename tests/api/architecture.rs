//! The "what may import what" table (`docs/decisions.md`, "The application core"; first drawn in
//! the shared architecture brief), checked against the source: every `use crate::…` and
//! `crate::…` path in `src/**` must go to a layer its own layer may import.
//! A new top-level module fails the test until it is given a row.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// What a layer may import: only the layers listed, or every layer before it in [`MAY_IMPORT`]
/// but those listed.
enum May {
    Only(&'static [&'static str]),
    AllBelowBut(&'static [&'static str]),
}

use May::{AllBelowBut, Only};

/// Each layer (a top-level module of `src/`, a folder or a file) and what it may import.
/// Lower layers come first; the table is checked to have no loop.
const MAY_IMPORT: &[(&str, May)] = &[
    ("domain", Only(&[])),
    ("security", Only(&["domain"])),
    ("config", Only(&["domain"])),
    ("telemetry", Only(&["config"])),
    ("storage", Only(&["domain", "config"])),
    ("metrics", Only(&["storage"])),
    // The adapter formats stored rows into posts (`format`, `answers`), so it reads storage's
    // row types; it never holds the `Store` (see FORBIDDEN).
    (
        "mattermost",
        Only(&["domain", "config", "metrics", "security", "storage"]),
    ),
    ("live", Only(&["domain", "security", "storage"])),
    ("cluster", Only(&["live", "domain"])),
    ("app", AllBelowBut(&["telemetry"])),
    ("jobs", AllBelowBut(&["telemetry"])),
    // Handlers reach the other instances only through the app (never `cluster`), and read
    // back-office lists straight from storage.
    ("http", AllBelowBut(&["jobs", "cluster", "telemetry"])),
    // `parley archive` runs the cleanup step.
    (
        "cli",
        AllBelowBut(&["http", "live", "cluster", "telemetry"]),
    ),
    // The only file that names every layer: it builds the App and the HTTP state and spawns
    // the jobs.
    ("startup", AllBelowBut(&[])),
];

/// Every layer's allowed imports, spelled out.
fn allowed_imports() -> BTreeMap<&'static str, Vec<&'static str>> {
    let mut below = Vec::new();
    let mut table = BTreeMap::new();
    for (layer, may) in MAY_IMPORT {
        let allowed = match may {
            Only(layers) => layers.to_vec(),
            AllBelowBut(except) => below
                .iter()
                .copied()
                .filter(|l| !except.contains(l))
                .collect(),
        };
        table.insert(*layer, allowed);
        below.push(*layer);
    }
    table
}

/// Paths a layer may not name even though it may import their layer.
const FORBIDDEN: &[(&str, &str, &str)] = &[
    (
        "mattermost",
        "storage::Store",
        "the adapter reads row types, it never holds the database",
    ),
    (
        "mattermost",
        "storage::StoreError",
        "the adapter reads row types, it never holds the database",
    ),
];

/// Files that are not a layer: the crate root and the binary (which uses `parley::`).
const NOT_LAYERS: &[&str] = &["lib", "main"];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The layer of a file: its first path segment under `src/`, without `.rs`.
fn layer_of(file: &Path) -> String {
    let relative = file.strip_prefix(src_dir()).expect("under src");
    let first = relative
        .components()
        .next()
        .expect("a file")
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The code without comments (line comments, doc comments), so that prose naming a module is
/// not taken for an import. String contents are kept: no `crate::` path lives in a string.
fn without_comments(code: &str) -> String {
    code.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every crate path a file names, whole (`app::chats::start`, `storage::Store`): the items of
/// `use crate::{…}` groups (nested groups flattened) and every other `crate::a::b` path.
fn crate_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let end = closing_brace(group);
            flatten("", &group[..end], &mut paths);
            rest = &group[end..];
        } else {
            let len = after
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(after.len());
            let path = after[..len].trim_end_matches(':');
            if let Some(group) = after[len..].strip_prefix('{') {
                let end = closing_brace(group);
                flatten(&format!("{path}::"), &group[..end], &mut paths);
            } else {
                paths.push(path.to_owned());
            }
            rest = &after[len..];
        }
    }
    paths
}

/// The index of the `}` closing a group whose `{` was just passed.
fn closing_brace(group: &str) -> usize {
    let mut depth = 1;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    group.len()
}

/// Splits the items of a `{…}` group at top-level commas and adds each, prefixed, to `out`.
fn flatten(prefix: &str, body: &str, out: &mut Vec<String>) {
    let mut depth = 0;
    let mut start = 0;
    let mut items = Vec::new();
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&body[start..]);
    for item in items.into_iter().map(str::trim).filter(|i| !i.is_empty()) {
        match item.find('{') {
            Some(open) => {
                let inner = &item[open + 1..item.rfind('}').unwrap_or(item.len())];
                flatten(&format!("{prefix}{}", &item[..open]), inner, out);
            }
            None => out.push(format!("{prefix}{item}")),
        }
    }
}

#[test]
fn every_import_follows_the_layer_table() {
    let table = allowed_imports();
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    files.sort();
    let mut broken = Vec::new();
    let mut unknown_layers = BTreeSet::new();
    for file in &files {
        let layer = layer_of(file);
        if NOT_LAYERS.contains(&layer.as_str()) {
            continue;
        }
        let Some(allowed) = table.get(layer.as_str()) else {
            unknown_layers.insert(layer);
            continue;
        };
        let code = without_comments(&std::fs::read_to_string(file).expect("readable"));
        let shown = file.strip_prefix(src_dir()).expect("under src").display();
        for path in crate_paths(&code) {
            let target = path.split("::").next().unwrap_or_default();
            if target.is_empty() || target == layer || target == "self" {
                continue;
            }
            if !allowed.contains(&target) {
                broken.push(format!(
                    "src/{shown}: `crate::{path}` ({layer} may not import {target})"
                ));
            }
            for (from, forbidden, why) in FORBIDDEN {
                if *from == layer
                    && (path == *forbidden || path.starts_with(&format!("{forbidden}::")))
                {
                    broken.push(format!("src/{shown}: `crate::{path}` ({why})"));
                }
            }
        }
        if layer != "http" && layer != "startup" && code.contains("AppState") {
            broken.push(format!(
                "src/{shown}: names AppState, the HTTP layer's own state (take `&App`)"
            ));
        }
    }
    assert!(
        unknown_layers.is_empty(),
        "top-level modules without a row in MAY_IMPORT (give each one): {unknown_layers:?}"
    );
    assert!(
        broken.is_empty(),
        "imports that break the layer table (MAY_IMPORT; docs/decisions.md, \"The application core\"):\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_layer_table_has_no_loop() {
    // Every layer may import only layers listed before it (and names only known ones).
    let mut seen = BTreeSet::new();
    for (layer, may) in MAY_IMPORT {
        let (Only(named) | AllBelowBut(named)) = may;
        for target in *named {
            assert!(
                seen.contains(target) || matches!(may, AllBelowBut(_)),
                "{layer} may import {target}, which is not a lower layer"
            );
            assert!(
                MAY_IMPORT.iter().any(|(l, _)| l == target),
                "{layer} names {target}, which is no layer"
            );
        }
        seen.insert(*layer);
    }
}

#[test]
fn the_path_reader_sees_grouped_nested_and_inline_imports() {
    let code = "use crate::{app::{App, chats}, storage::{Store, chats::ChatRow}};\n\
                fn f() { crate::jobs::outbox::wake(); } // crate::http::nothing\n\
                use crate::live::{Hub, views::{ChatView}};";
    let paths = crate_paths(&without_comments(code));
    assert_eq!(
        paths,
        [
            "app::App",
            "app::chats",
            "storage::Store",
            "storage::chats::ChatRow",
            "jobs::outbox::wake",
            "live::Hub",
            "live::views::ChatView",
        ]
    );
}
