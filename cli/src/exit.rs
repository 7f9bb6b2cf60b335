// SPDX-License-Identifier: Apache-2.0
//! How a command ends: the error kinds of the CLI, their messages on stderr and their exit codes
//! (0 ok, 1 the operation failed, 2 usage error, 3 not found). Scripts branch on these codes, so
//! the mapping lives in one place.

use jetjobs::ErrorKind;

/// The operation failed.
pub(crate) const FAILED: u8 = 1;
/// The command line was wrong (clap uses 2 for its own usage errors too).
pub(crate) const USAGE: u8 = 2;
/// The named task, queue, schedule, governor, lease, key or job does not exist.
pub(crate) const NOT_FOUND: u8 = 3;

/// Why a command did not succeed.
#[derive(Debug)]
pub(crate) enum CliError {
    /// The core reported an error; its kind decides between "failed" and "not found".
    Core(jetjobs::Error),
    /// The command line asked for something that cannot be done (e.g. no `--force` off a TTY).
    Usage(String),
    /// The operation failed outside the core (e.g. the user declined a prompt).
    Failed(String),
    /// End quietly with this code (e.g. the exit code of the command `governor run` ran).
    Exit(u8),
}

impl From<jetjobs::Error> for CliError {
    fn from(e: jetjobs::Error) -> Self {
        Self::Core(e)
    }
}

impl CliError {
    /// Prints the message, if any, on stderr and returns the exit code.
    pub(crate) fn report(self) -> u8 {
        match self {
            CliError::Core(e) => {
                eprintln!("error: {e} ({})", e.code());
                core_exit_code(e.kind())
            }
            CliError::Usage(message) => {
                eprintln!("error: {message}");
                USAGE
            }
            CliError::Failed(message) => {
                eprintln!("error: {message}");
                FAILED
            }
            CliError::Exit(code) => code,
        }
    }
}

/// 3 for the kinds that mean "no such thing", 1 for every other failure.
pub(crate) fn core_exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::TaskNotFound
        | ErrorKind::QueueNotFound
        | ErrorKind::ScheduleNotFound
        | ErrorKind::GovernorNotFound
        | ErrorKind::LeaseNotFound
        | ErrorKind::KeyNotFound
        | ErrorKind::JobNotFound => NOT_FOUND,
        _ => FAILED,
    }
}

/// A bug must still end with one readable line, not a backtrace: operators paste these into
/// tickets, and a backtrace hides the message. Process-wide: `main` installs it before
/// [`run`]; the Python and Node packages use [`run_with_panic_hook`], which restores the
/// previous hook afterwards.
///
/// [`run`]: crate::run
/// [`run_with_panic_hook`]: crate::run_with_panic_hook
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        // `jetjobs task list | head` closes stdout early, and `println!` panics on the broken
        // pipe: end as a process killed by SIGPIPE would (128 + 13), silently, like other tools.
        if message.contains("Broken pipe") {
            std::process::exit(141);
        }
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error{place}: {message} (please report this)");
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_kinds_exit_3_and_others_1() {
        assert_eq!(core_exit_code(ErrorKind::TaskNotFound), NOT_FOUND);
        assert_eq!(core_exit_code(ErrorKind::KeyNotFound), NOT_FOUND);
        assert_eq!(core_exit_code(ErrorKind::InvalidSchedule), FAILED);
        assert_eq!(core_exit_code(ErrorKind::Connection), FAILED);
    }
}
