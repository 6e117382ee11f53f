//! The browser tests' shared Chromium launch (`tests/browser/launch.mjs`): a browser that dies
//! before its first page is started once more, and one that dies twice is reported with what
//! it printed. Driven with a stand-in for Chromium that crashes.

use std::{os::unix::fs::PermissionsExt, path::PathBuf};

/// A `chromium` that prints to stderr and dies of SIGSEGV for its first `crashes` starts, then
/// runs the real one.
fn crashing_chromium(dir: &std::path::Path, crashes: u32) -> PathBuf {
    let real = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let counter = dir.join("starts");
    let script = dir.join("chromium");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             n=$(cat '{counter}' 2>/dev/null || echo 0)\n\
             n=$((n + 1))\n\
             echo $n > '{counter}'\n\
             if [ $n -le {crashes} ]; then\n\
               echo \"stand-in crash number $n\" >&2\n\
               kill -SEGV $$\n\
             fi\n\
             exec '{real}' \"$@\"\n",
            counter = counter.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

async fn launch_check(chromium: &std::path::Path) -> std::process::Output {
    let browser_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser` (scripts/test does it)"
    );
    tokio::process::Command::new("node")
        .arg(browser_dir.join("launch_check.mjs"))
        .current_dir(&browser_dir)
        .env("CHROMIUM", chromium)
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs (install Node.js and Debian's chromium)")
}

#[tokio::test]
async fn a_browser_that_crashes_at_launch_is_started_once_more() {
    let dir = tempfile::tempdir().unwrap();
    let output = launch_check(&crashing_chromium(dir.path(), 1)).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("launched: up"), "{stdout}");
    assert!(stderr.contains("starting it once more"), "{stderr}");
}

#[tokio::test]
async fn a_browser_that_crashes_twice_is_reported_with_its_own_output() {
    let dir = tempfile::tempdir().unwrap();
    let output = launch_check(&crashing_chromium(dir.path(), 2)).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("Chromium failed to start twice"),
        "{stderr}"
    );
    for n in [1, 2] {
        assert!(
            stderr.contains(&format!("stand-in crash number {n}")),
            "the browser's stderr of start {n} is in the report: {stderr}"
        );
    }
}
