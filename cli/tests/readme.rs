// SPDX-License-Identifier: Apache-2.0
//! The README's copy of `jetjobs --help` is the current output.

use std::process::Command;

#[test]
fn the_readme_shows_the_current_help() {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Operator CLI and dashboard")
        .nth(1)
        .expect("the README has the CLI section");
    let copy = section
        .split("```text\n")
        .nth(1)
        .and_then(|block| block.split("\n```").next())
        .expect("the section has a text block");
    let output = Command::new(env!("CARGO_BIN_EXE_jetjobs"))
        .arg("--help")
        .env_remove("NATS_URL")
        .output()
        .expect("jetjobs runs");
    let help = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        copy,
        help.trim_end(),
        "update the README's copy of `jetjobs --help`"
    );
}
