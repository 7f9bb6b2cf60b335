// SPDX-License-Identifier: Apache-2.0
//! One version for every package: the workspace `version` in the root Cargo.toml. The Rust crates
//! inherit it, maturin gives it to the Python package, and `make dist` stamps it into the npm
//! packages it builds; the copies that must be written by hand are checked here.

use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The repository root, or `None` when this runs from a packaged crate (no workspace around it).
fn root() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()?
        .to_path_buf();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).ok()?;
    manifest.contains("[workspace]").then_some(root)
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_npm_package_has_the_cargo_workspace_version() {
    let Some(root) = root() else { return };
    let fix = format!("run `npm version {VERSION} --no-git-tag-version`, then `npm run build`");
    let package = json(&root.join("package.json"));
    assert_eq!(
        package["version"], VERSION,
        "package.json's version must be the workspace version in Cargo.toml: {fix}"
    );
    let lock = json(&root.join("package-lock.json"));
    assert_eq!(lock["version"], VERSION, "package-lock.json: {fix}");
    assert_eq!(
        lock["packages"][""]["version"], VERSION,
        "package-lock.json: {fix}"
    );
    // napi-rs writes the version into the loader it generates, to check the platform package's.
    let loader = std::fs::read_to_string(root.join("bindings-node/native.js")).expect("native.js");
    assert!(
        loader.contains(&format!("expected {VERSION} but got")),
        "bindings-node/native.js was generated for another version: {fix}"
    );
}

#[test]
fn path_dependencies_require_the_workspace_version() {
    let Some(root) = root() else { return };
    // `cargo package` publishes these requirements: `jetjobs = { path = …, version = "X" }`.
    for manifest in ["cli/Cargo.toml", "dashboard/Cargo.toml"] {
        let text = std::fs::read_to_string(root.join(manifest)).expect("manifest");
        for line in text.lines().filter(|l| l.contains("path = \"../")) {
            if let Some(rest) = line.split("version = \"").nth(1) {
                let required = rest.split('"').next().unwrap_or_default();
                assert_eq!(required, VERSION, "{manifest}: {line}");
            }
        }
    }
}

#[test]
fn the_binary_reports_the_workspace_version() {
    let output = Command::new(env!("CARGO_BIN_EXE_jetjobs"))
        .arg("--version")
        .output()
        .expect("jetjobs runs");
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("jetjobs {VERSION}")
    );
}
