//! The widget is built from parts (`assets/widget/`): the served `/widget.js` is one script
//! holding every part, the CSS and every translation, and no language lacks an English key.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

use crate::helpers::spawn_app;

type Texts = BTreeMap<String, String>;

fn widget_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/widget")
}

/// Every `i18n/<lang>.json` of the source tree.
fn translations() -> BTreeMap<String, Texts> {
    let dir = widget_dir().join("i18n");
    let mut all = BTreeMap::new();
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let lang = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let texts: Texts = serde_json::from_str(&fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        all.insert(lang, texts);
    }
    all
}

/// The `{name}` placeholders a text fills in.
fn placeholders(text: &str) -> BTreeSet<&str> {
    text.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .filter(|name| {
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
        .collect()
}

#[test]
fn every_language_has_every_english_key_with_the_same_placeholders() {
    let all = translations();
    let en = all.get("en").expect("en.json is the fallback");
    assert!(
        all.len() >= 2,
        "English and German at least: {:?}",
        all.keys()
    );
    let mut problems = Vec::new();
    for (lang, texts) in &all {
        for (key, english) in en {
            match texts.get(key) {
                None => problems.push(format!("{lang}.json lacks {key:?}")),
                Some(text) if placeholders(text) != placeholders(english) => {
                    problems.push(format!(
                        "{lang}.json {key:?} fills {:?}, English {:?}",
                        placeholders(text),
                        placeholders(english)
                    ))
                }
                Some(_) => {}
            }
        }
        for key in texts.keys().filter(|k| !en.contains_key(*k)) {
            problems.push(format!("{lang}.json has {key:?}, which en.json has not"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn the_served_widget_is_one_script_with_every_part_the_css_and_every_translation() {
    let app = spawn_app().await;
    let js = app
        .http
        .get(format!("{}/widget.js", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // One function around everything, after the banner.
    let dir = widget_dir();
    let banner = fs::read_to_string(dir.join("banner.js")).unwrap();
    assert!(
        js.starts_with(&format!("{banner}(() => {{\n")),
        "banner, then the one function"
    );
    assert!(js.ends_with("\n})();\n"), "the function closes at the end");
    assert_eq!(
        js.matches("\n(() => {\n").count(),
        1,
        "exactly one top-level function"
    );

    // Every script part, in build.rs's order (each part once).
    let mut at = 0;
    for name in env!("PARLEY_WIDGET_PARTS").split(',') {
        let text = fs::read_to_string(dir.join(name)).unwrap();
        let found = js[at..]
            .find(&text)
            .unwrap_or_else(|| panic!("{name} is in the script, in order"));
        at += found + text.len();
    }

    // The CSS as one string literal, exactly as in widget.css.
    let css = fs::read_to_string(dir.join("widget.css")).unwrap();
    let literal = format!("\nconst CSS = {};\n", serde_json::to_string(&css).unwrap());
    assert!(js.contains(&literal), "widget.css is inlined as a string");

    // The translations: every language, every key, every text.
    let line = js
        .lines()
        .find_map(|l| l.strip_prefix("const I18N = "))
        .expect("the translations are inlined");
    let served: BTreeMap<String, Texts> =
        serde_json::from_str(line.strip_suffix(';').expect("one statement")).unwrap();
    let files = translations();
    assert_eq!(
        served.keys().collect::<Vec<_>>(),
        files.keys().collect::<Vec<_>>()
    );
    for (lang, texts) in &files {
        for (key, text) in texts {
            assert_eq!(
                served[lang].get(key),
                Some(text),
                "{lang}.json {key:?} is served"
            );
        }
    }
}
