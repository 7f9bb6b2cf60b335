// SPDX-License-Identifier: Apache-2.0
//! Rendering for people and scripts: one JSON document with `--json`, aligned tables otherwise;
//! confirmation prompts and progress bars only when a person is at a terminal.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::exit::CliError;

/// Where a command's result goes and in which form.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    json: bool,
}

impl Output {
    pub(crate) fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether `--json` was given.
    pub(crate) fn json(&self) -> bool {
        self.json
    }

    /// Prints `value` as one pretty JSON document.
    pub(crate) fn print_json(&self, value: &impl Serialize) -> Result<(), CliError> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| CliError::Failed(format!("encoding JSON: {e}")))?;
        println!("{text}");
        Ok(())
    }

    /// `value` as JSON with `--json`, else what `human` prints.
    pub(crate) fn show<T: Serialize>(
        &self,
        value: &T,
        human: impl FnOnce(&T),
    ) -> Result<(), CliError> {
        if self.json {
            self.print_json(value)
        } else {
            human(value);
            Ok(())
        }
    }

    /// A bar counting `total` steps, drawn only for a person watching (stdout is a terminal, no
    /// `--json`) and only when there is more than one step.
    pub(crate) fn progress(&self, total: usize, what: &str) -> ProgressBar {
        if self.json || total < 2 || !std::io::stdout().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(total as u64);
        if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta} left)")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        bar
    }
}

/// Asks before a destructive change. `--force` skips the question; without a terminal to ask
/// on, `--force` is required, so a script never blocks on a prompt nor destroys by accident.
pub(crate) fn confirm(question: &str, force: bool) -> Result<(), CliError> {
    if force {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(format!(
            "{question}? Refusing without confirmation because stdin is not a terminal: pass \
             --force to go ahead"
        )));
    }
    eprint!("{question}? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::Failed(format!("reading the answer: {e}")))?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(CliError::Failed("aborted: nothing was changed".into()))
    }
}

/// A table whose columns are padded to their widest cell.
pub(crate) struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(headers: &[&str]) -> Self {
        Self {
            rows: vec![headers.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let pad = widths[c] - cell.chars().count();
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub(crate) fn print(&self) {
        print!("{}", self.render());
    }
}

/// A duration as a person reads it (`1h2m3s`, `1.50s`); zero is `forever` where a limit is
/// meant, so callers pass what zero means.
pub(crate) fn duration(d: Duration, zero: &str) -> String {
    if d.is_zero() {
        return zero.to_string();
    }
    let secs = d.as_secs();
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{:.2}s", d.as_secs_f64()),
        (0, 0, _) => format!("{minutes}m{seconds}s"),
        (0, _, _) => format!("{hours}h{minutes}m{seconds}s"),
        _ => format!("{days}d{hours}h{minutes}m{seconds}s"),
    }
}

/// A byte count as a person reads it.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A limit where -1 (or 0) means none.
pub(crate) fn limit(n: i64) -> String {
    if n > 0 {
        n.to_string()
    } else {
        "unlimited".into()
    }
}

/// A timestamp in the local form the tables use.
pub(crate) fn time(t: &jetjobs::Timestamp) -> String {
    t.to_utc().format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let mut table = Table::new(&["NAME", "ITEMS"]);
        table.row(vec!["EMAIL".into(), "12".into()]);
        table.row(vec!["A".into(), "3".into()]);
        assert_eq!(table.render(), "NAME   ITEMS\nEMAIL  12\nA      3\n");
    }

    #[test]
    fn durations_and_sizes_read_well() {
        assert_eq!(duration(Duration::ZERO, "forever"), "forever");
        assert_eq!(duration(Duration::from_millis(1500), ""), "1.50s");
        assert_eq!(duration(Duration::from_secs(3723), ""), "1h2m3s");
        assert_eq!(duration(Duration::from_secs(90_061), ""), "1d1h1m1s");
        assert_eq!(bytes(10), "10 B");
        assert_eq!(bytes(2048), "2.0 KiB");
        assert_eq!(limit(-1), "unlimited");
    }
}
