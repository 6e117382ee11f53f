//! Build steps. Rebuilds when a migration is added: `sqlx::migrate!` embeds the migration
//! folders at compile time, and cargo does not watch directories for new files by itself.
//! Joins the widget's parts (`assets/widget/`) into the one script served at `/widget.js`
//! (`$OUT_DIR/widget.js`): plain concatenation, no npm and no bundler.

use std::{
    collections::BTreeMap,
    env, fs,
    path::{Path, PathBuf},
};

const WIDGET_DIR: &str = "assets/widget";

/// The script parts, in the order they run inside the widget's one function. The CSS and the
/// translations are written in front of `i18n.js`, the first part that uses them.
const WIDGET_PARTS: &[&str] = &[
    "setup.js",
    "i18n.js",
    "api.js",
    "dom.js",
    "view.js",
    "messages.js",
    "files.js",
    "chat.js",
    "socket.js",
    "main.js",
];

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let script = widget_script(Path::new(WIDGET_DIR));
    fs::write(out.join("widget.js"), script).expect("cannot write $OUT_DIR/widget.js");
    // The order, for the test that checks the served script holds every part.
    println!(
        "cargo:rustc-env=PARLEY_WIDGET_PARTS={}",
        WIDGET_PARTS.join(",")
    );
}

/// Reads a part and tells cargo to rebuild when it changes.
fn part(path: &Path) -> String {
    println!("cargo:rerun-if-changed={}", path.display());
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The served script: the banner comment, then one function holding the parts in order.
fn widget_script(dir: &Path) -> String {
    // The folders too, so that a new translation file is noticed.
    println!("cargo:rerun-if-changed={}", dir.display());
    println!("cargo:rerun-if-changed={}", dir.join("i18n").display());

    // The CSS as a JS string literal: a JSON string is one, with quotes, backslashes and
    // control characters escaped.
    let css = serde_json::to_string(&part(&dir.join("widget.css"))).expect("a string serialises");
    let i18n = serde_json::to_string(&translations(&dir.join("i18n"))).expect("a map serialises");

    let mut js = part(&dir.join("banner.js"));
    js.push_str("(() => {\n");
    for name in WIDGET_PARTS {
        if *name == "i18n.js" {
            js.push_str(
                "// ------------------- written by build.rs from widget.css and i18n/*.json --\n\n",
            );
            js.push_str(&format!("const CSS = {css};\n\nconst I18N = {i18n};\n\n"));
        }
        let text = part(&dir.join(name));
        js.push_str(&text);
        if !text.ends_with('\n') {
            js.push('\n');
        }
        js.push('\n');
    }
    js.push_str("})();\n");
    js
}

/// Every `i18n/<lang>.json`: language -> key -> text. A file that is not an object of strings
/// fails the build; that each language has every English key is checked by a test
/// (`tests/api/widget_parts.rs`), and the widget falls back to English for a missing one.
fn translations(dir: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut all = BTreeMap::new();
    let entries =
        fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let lang = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        assert!(
            (2..=3).contains(&lang.len()) && lang.bytes().all(|b| b.is_ascii_lowercase()),
            "{}: a translation file is named by its language's primary tag (en.json, de.json)",
            path.display()
        );
        let texts: BTreeMap<String, String> = serde_json::from_str(&part(&path))
            .unwrap_or_else(|e| panic!("{}: not an object of strings: {e}", path.display()));
        all.insert(lang, texts);
    }
    assert!(
        all.contains_key("en"),
        "{}/en.json is missing: English is the fallback",
        dir.display()
    );
    all
}
