// SPDX-License-Identifier: Apache-2.0
//! The external-process handler (asyncjobs' `Mux.ExternalProcess`): the command runs with no
//! arguments, no stdin and an environment holding only `CHORIA_AJ_TASK`, the path of a temporary
//! file with the task document. Exit 0 completes the task with the combined stdout and stderr as a
//! string; anything else is a failed try.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Instant;

use futures::future::BoxFuture;

use crate::handler::{Handler, HandlerError, HandlerResult, TaskContext};
use crate::task::Task;
use crate::wire::names::EXTERNAL_PROCESS_TASK_ENV;

/// Runs one command per try.
pub(crate) struct ExternalProcess {
    command: PathBuf,
}

impl ExternalProcess {
    pub(crate) fn new(command: PathBuf) -> Self {
        Self { command }
    }
}

impl Handler for ExternalProcess {
    fn call(&self, _ctx: TaskContext, task: Task) -> BoxFuture<'static, HandlerResult> {
        let command = self.command.clone();
        // Dropping the future (deadline, shutdown, cancellation) kills the command.
        Box::pin(async move { run(&command, &task).await })
    }
}

async fn run(command: &Path, task: &Task) -> HandlerResult {
    // Checked on every try, as asyncjobs does: the command may appear or go away.
    match tokio::fs::metadata(command).await {
        Ok(meta) if !meta.is_dir() => {}
        _ => return Err(HandlerError::retry("command not found")),
    }
    let document = task
        .to_json()
        .map_err(|e| HandlerError::retry(e.to_string()))?;
    let file = TaskFile::write(&document).await?;
    let started = Instant::now();
    tracing::info!(task = %task.id, tries = task.tries, command = %command.display(), "running external command");
    let (status, output) = execute(command, &file.path).await.map_err(|e| {
        HandlerError::retry(format!(
            "execution failed: fork/exec {}: {}",
            command.display(),
            os_error_text(&e)
        ))
    })?;
    let output = String::from_utf8_lossy(&output).into_owned();
    if !status.success() {
        tracing::error!(task = %task.id, command = %command.display(), %output, "external command failed");
        return Err(HandlerError::retry(format!(
            "execution failed: {}",
            exit_text(status)
        )));
    }
    tracing::info!(
        task = %task.id,
        command = %command.display(),
        elapsed = ?started.elapsed(),
        bytes = output.len(),
        "external command completed"
    );
    Ok(serde_json::Value::String(output))
}

/// Runs the command with stdout and stderr on one pipe (their writes interleaved as written, as
/// Go's `CombinedOutput` has them) and returns its status and everything it wrote.
async fn execute(command: &Path, task_file: &Path) -> std::io::Result<(ExitStatus, Vec<u8>)> {
    let (mut reader, writer) = std::io::pipe()?;
    let mut child = {
        let mut cmd = tokio::process::Command::new(command);
        cmd.env_clear()
            .env(EXTERNAL_PROCESS_TASK_ENV, task_file)
            .stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .kill_on_drop(true);
        cmd.spawn()?
        // `cmd` drops here with its copies of the write end, so the read below ends with the child.
    };
    let reading = tokio::task::spawn_blocking(move || {
        let mut output = Vec::new();
        reader.read_to_end(&mut output).map(|_| output)
    });
    let status = child.wait().await?;
    let output = reading.await.map_err(std::io::Error::other)??;
    Ok((status, output))
}

/// Go's `exec.ExitError` text: `exit status N`, or `signal: <name>` for a killed process.
fn exit_text(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(signal) = status.signal() {
            let core = if status.core_dumped() {
                " (core dumped)"
            } else {
                ""
            };
            return format!("signal: {}{core}", signal_name(signal));
        }
    }
    status.to_string()
}

/// Go's names of the common signals (`syscall.Signal.String` on Linux).
fn signal_name(signal: i32) -> String {
    const NAMES: [&str; 15] = [
        "hangup",
        "interrupt",
        "quit",
        "illegal instruction",
        "trace/breakpoint trap",
        "aborted",
        "bus error",
        "floating point exception",
        "killed",
        "user defined signal 1",
        "segmentation fault",
        "user defined signal 2",
        "broken pipe",
        "alarm clock",
        "terminated",
    ];
    usize::try_from(signal - 1)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("signal {signal}"), |name| (*name).to_owned())
}

/// An OS error as Go prints it: `permission denied`, not `Permission denied (os error 13)`.
fn os_error_text(error: &std::io::Error) -> String {
    let text = error.to_string();
    let text = match text.find(" (os error ") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The task document in a file only the owner can read, `asyncjobs-task<digits>` in the temp dir
/// (as Go's `os.CreateTemp("", "asyncjobs-task")` names it); removed on drop.
struct TaskFile {
    path: PathBuf,
}

impl TaskFile {
    async fn write(document: &[u8]) -> Result<Self, HandlerError> {
        let document = document.to_vec();
        tokio::task::spawn_blocking(move || Self::write_blocking(&document))
            .await
            .map_err(|e| HandlerError::retry(e.to_string()))?
            .map_err(|e| HandlerError::retry(format!("writing the task file: {e}")))
    }

    fn write_blocking(document: &[u8]) -> std::io::Result<Self> {
        use std::io::Write as _;
        let dir = std::env::temp_dir();
        loop {
            let path = dir.join(format!("asyncjobs-task{}", rand::random::<u32>()));
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(&path) {
                Ok(mut file) => {
                    let file_guard = Self { path };
                    file.write_all(document)?;
                    return Ok(file_guard);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for TaskFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn exit_and_error_texts_follow_go() {
        assert_eq!(signal_name(9), "killed");
        assert_eq!(signal_name(15), "terminated");
        assert_eq!(signal_name(40), "signal 40");
        let denied = std::io::Error::from_raw_os_error(13);
        assert_eq!(os_error_text(&denied), "permission denied");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn output_is_combined_and_status_decides() -> crate::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("jetjobs-external-{}", rand::random::<u64>()));
        std::fs::create_dir(&dir)
            .map_err(|e| crate::Error::new(crate::ErrorKind::Io, e.to_string()))?;
        let script = |name: &str, body: &str| {
            let path = dir.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("script");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            path
        };
        // The shell's own environment as it started: /proc/<pid>/environ (NUL-separated).
        let ok = script(
            "ok.sh",
            "echo out; echo err >&2; echo \"args=$#\"; /bin/cat /proc/$$/environ",
        );
        let bad = script("bad.sh", "echo oops; exit 3");
        let ctx = || TaskContext::detached(Duration::from_secs(10));
        let task = Task::new("t", &1)?;

        let done = ExternalProcess::new(ok).call(ctx(), task.clone()).await;
        let text = done
            .as_ref()
            .ok()
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let (printed, environ) = text.split_at(text.rfind('\n').map_or(0, |i| i + 1));
        assert_eq!(printed, "out\nerr\nargs=0\n", "{text:?}");
        let env: Vec<&str> = environ.split('\0').filter(|v| !v.is_empty()).collect();
        assert_eq!(env.len(), 1, "{env:?}");
        let file = env[0].strip_prefix("CHORIA_AJ_TASK=").unwrap_or_default();
        assert!(file.contains("asyncjobs-task"), "{file}");
        assert!(!Path::new(file).exists(), "the task file is removed");

        let failed = ExternalProcess::new(bad).call(ctx(), task.clone()).await;
        assert_eq!(
            failed,
            Err(HandlerError::retry("execution failed: exit status 3"))
        );
        let missing = ExternalProcess::new(dir.join("nope"))
            .call(ctx(), task.clone())
            .await;
        assert_eq!(missing, Err(HandlerError::retry("command not found")));
        let directory = ExternalProcess::new(dir.clone()).call(ctx(), task).await;
        assert_eq!(directory, Err(HandlerError::retry("command not found")));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
