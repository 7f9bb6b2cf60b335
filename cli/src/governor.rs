// SPDX-License-Identifier: Apache-2.0
//! `jetjobs governor`: choria's concurrency governors, with `choria governor`'s commands and
//! behaviour (governors on `<collective>.governor.<name>`, shared with choria both ways).

use std::process::Stdio;
use std::time::Duration;

use clap::{Args, Subcommand};
use jetjobs::{Client, ErrorKind, Governor, GovernorManager, collective_subject};
use serde_json::json;

use crate::connect::{ConnectArgs, identity, shutdown_on_signal};
use crate::exit::CliError;
use crate::output::{self, Output, Table, confirm};
use crate::queue::parse_duration;
use crate::schema::{GovernorJson, LeaseJson};

#[derive(Debug, Subcommand)]
pub(crate) enum GovernorCommand {
    /// Create a governor, or update an existing one's capacity and expiry
    Add(AddArgs),
    /// Show a governor and its leases
    #[command(visible_alias = "info", alias = "show")]
    View {
        /// The governor
        name: String,
    },
    /// List the governors of a collective
    #[command(visible_alias = "ls")]
    List {
        /// The choria collective whose governors to list
        #[arg(long, default_value = "choria")]
        collective: String,
    },
    /// Remove one lease from a governor
    Evict {
        /// The governor
        name: String,
        /// The lease's id (its sequence, as `view` shows)
        lease: u64,
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
    },
    /// Remove every lease from a governor
    Reset {
        /// The governor
        name: String,
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
    },
    /// Delete a governor and its leases
    #[command(visible_alias = "rm")]
    Delete {
        /// The governor
        name: String,
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
    },
    /// Run a command once a slot of the governor is free, then give the slot back; exits with
    /// the command's exit code
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// The governor
    name: String,
    /// How many may hold a slot at once
    capacity: u64,
    /// Leases older than this are evicted (Go duration, 0 never)
    #[arg(value_parser = parse_duration)]
    expire: Duration,
    /// Stream replicas
    #[arg(default_value_t = 1)]
    replicas: usize,
    /// The choria collective whose subject it campaigns on
    #[arg(long, default_value = "choria")]
    collective: String,
    /// Update a differing existing governor without asking
    #[arg(short, long)]
    force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The governor
    name: String,
    /// The command and its arguments (a single argument is split with shell quoting rules)
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
    /// Give up if no slot is free within this time
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    max_wait: Duration,
    /// Pause between tries while the governor is full (at least 1s)
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    interval: Duration,
    /// Keep the slot until it expires instead of releasing it, so at most CAPACITY runs
    /// start per expiry period; a full period exits 0 without running the command
    #[arg(long)]
    max_per_period: bool,
}

impl GovernorCommand {
    pub(crate) async fn run(self, connect: &ConnectArgs, out: &Output) -> Result<(), CliError> {
        let client = connect.connect().await?;
        match self {
            GovernorCommand::Add(args) => add(&client, out, args).await,
            GovernorCommand::View { name } => {
                let manager = GovernorManager::load(&client, &name).await?;
                let view = describe(&manager).await?;
                out.show(&view, show_governor)
            }
            GovernorCommand::List { collective } => {
                let names = GovernorManager::list(&client, &collective).await?;
                out.show(&names, |names| {
                    if names.is_empty() {
                        println!("No Governors found");
                    } else {
                        println!("Known Governors:\n");
                        for name in names {
                            println!("\t{name}");
                        }
                    }
                })
            }
            GovernorCommand::Evict { name, lease, force } => {
                let manager = GovernorManager::load(&client, &name)
                    .await?
                    .lifecycle("CLI")?;
                if manager.active().await? == 0 {
                    return no_leases(out, &name);
                }
                confirm(&format!("Evict lease {lease} from {name}"), force)?;
                let holder = manager.evict(lease).await?;
                out.show(
                    &json!({"governor": name, "seq": lease, "holder": holder}),
                    |_| println!("Evicted {holder:?} from slot {lease}"),
                )
            }
            GovernorCommand::Reset { name, force } => {
                let manager = GovernorManager::load(&client, &name).await?;
                let active = manager.active().await?;
                if active == 0 {
                    return no_leases(out, &name);
                }
                confirm(&format!("Reset {name} with {active} lease entries"), force)?;
                manager.reset().await?;
                out.show(&json!({"governor": name, "removed": active}), |_| {
                    println!("Removed {active} leases from {name}")
                })
            }
            GovernorCommand::Delete { name, force } => {
                let manager = GovernorManager::load(&client, &name).await?;
                let active = manager.active().await?;
                confirm(
                    &format!("Delete {name} with {active} active lease entries"),
                    force,
                )?;
                manager.delete().await?;
                out.show(&json!({"governor": name, "deleted": true}), |_| {
                    println!("Deleted governor {name}")
                })
            }
            GovernorCommand::Run(args) => run(&client, args).await,
        }
    }
}

fn no_leases(out: &Output, name: &str) -> Result<(), CliError> {
    out.show(&json!({"governor": name, "removed": 0}), |_| {
        println!("No lease entries to remove")
    })
}

async fn add(client: &Client, out: &Output, args: AddArgs) -> Result<(), CliError> {
    let subject = collective_subject(&args.collective, &args.name);
    match GovernorManager::load(client, &args.name).await {
        Ok(existing) => {
            let differs = existing.limit() != args.capacity
                || existing.max_age() != args.expire
                || existing.replicas() != args.replicas;
            if differs {
                // Shown on stderr so that `--json` output stays one document.
                eprintln!("Existing configuration:\n");
                eprintln!(
                    "  Capacity: {} desired: {}",
                    existing.limit(),
                    args.capacity
                );
                eprintln!(
                    "   Expires: {} desired: {}",
                    output::duration(existing.max_age(), "never"),
                    output::duration(args.expire, "never")
                );
                eprintln!(
                    "  Replicas: {} desired: {}\n",
                    existing.replicas(),
                    args.replicas
                );
                confirm(
                    &format!("Update configuration for {}", args.name),
                    args.force,
                )?;
            }
        }
        Err(e) if e.kind() == ErrorKind::GovernorNotFound => {}
        Err(e) => return Err(e.into()),
    }
    let manager = GovernorManager::create(
        client,
        &args.name,
        args.capacity,
        args.expire,
        args.replicas,
        Some(&subject),
    )
    .await?;
    let view = describe(&manager).await?;
    out.show(&view, |g| {
        println!("Configuration:\n");
        println!("  Capacity: {}", g.capacity);
        println!(
            "   Expires: {}",
            output::duration(Duration::from_secs_f64(g.max_age_seconds), "never")
        );
        println!("  Replicas: {}", g.replicas);
    })
}

async fn describe(manager: &GovernorManager) -> Result<GovernorJson, CliError> {
    let now = chrono::Utc::now();
    let leases: Vec<LeaseJson> = manager
        .leases()
        .await?
        .into_iter()
        .map(|(seq, holder, taken_at)| LeaseJson {
            seq,
            holder,
            taken_at: taken_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            age_seconds: (now - taken_at).num_milliseconds().max(0) as f64 / 1000.0,
        })
        .collect();
    Ok(GovernorJson {
        name: manager.name().to_string(),
        capacity: manager.limit(),
        max_age_seconds: manager.max_age().as_secs_f64(),
        replicas: manager.replicas(),
        subject: manager.subject().to_string(),
        active: leases.len(),
        leases,
    })
}

/// A governor as `choria governor view` shows it.
fn show_governor(g: &GovernorJson) {
    println!("Configuration for Governor {}\n", g.name);
    println!("       Capacity: {}", g.capacity);
    println!(
        "        Expires: {}",
        output::duration(Duration::from_secs_f64(g.max_age_seconds), "never")
    );
    println!("       Replicas: {}", g.replicas);
    println!("        Subject: {}", g.subject);
    println!("  Active Leases: {}", g.active);
    if !g.leases.is_empty() {
        println!();
        let mut table = Table::new(&["ID", "PROCESS NAME", "AGE"]);
        for lease in &g.leases {
            table.row(vec![
                lease.seq.to_string(),
                lease.holder.clone(),
                format!("{:.3}s", lease.age_seconds),
            ]);
        }
        table.print();
    }
}

/// `choria governor run`: campaign, run, release, exit with the command's code.
async fn run(client: &Client, args: RunArgs) -> Result<(), CliError> {
    if args.interval < Duration::from_secs(1) {
        return Err(CliError::Usage("interval should be >=1s".into()));
    }
    let argv = command_line(&args.command)?;
    // Loaded first: an unknown governor is "not found" (exit 3) rather than a campaign that
    // nobody answers, and the campaign uses the subject the governor really has.
    let manager = GovernorManager::load(client, &args.name).await?;
    let me = identity();
    let mut governor = Governor::new(client, &args.name)?
        .subject(manager.subject())
        .interval(args.interval)
        .lifecycle("CLI")?
        .lifecycle_identity(&me);
    if args.max_per_period {
        governor = governor.without_leaving();
    }
    let shutdown = shutdown_on_signal();
    let lease = match governor.start(&me, Some(args.max_wait), &shutdown).await {
        Ok(lease) => lease,
        // choria: with --max-per-period a full period is not a failure, the run is just skipped.
        Err(e)
            if e.kind() == ErrorKind::Timeout
                && args.max_per_period
                && !shutdown.is_cancelled() =>
        {
            return Ok(());
        }
        Err(e) => {
            return Err(CliError::Core(jetjobs::Error::new(
                e.kind(),
                format!("could not get an execution slot: {e}"),
            )));
        }
    };
    let mut child = match tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            release(&lease).await;
            return Err(CliError::Failed(format!("could not run {}: {e}", argv[0])));
        }
    };
    let status = tokio::select! {
        status = child.wait() => status,
        _ = shutdown.cancelled() => {
            let _ = child.start_kill();
            child.wait().await
        }
    };
    release(&lease).await;
    let status = status.map_err(|e| CliError::Failed(format!("waiting for {}: {e}", argv[0])))?;
    match exit_code(status) {
        0 => Ok(()),
        code => Err(CliError::Exit(code)),
    }
}

/// The slot goes back whatever happened to the command; failing to give it back (evicted
/// meanwhile) must not hide the command's own exit code.
async fn release(lease: &jetjobs::Lease) {
    if let Err(e) = lease.release().await {
        eprintln!("warning: releasing the slot: {e} ({})", e.code());
    }
}

/// The argv to run: as given, or one argument split as a shell would (choria's behaviour).
fn command_line(command: &[String]) -> Result<Vec<String>, CliError> {
    let argv = match command {
        [single] if single.contains(char::is_whitespace) => shell_words::split(single)
            .map_err(|e| CliError::Usage(format!("cannot split the command {single:?}: {e}")))?,
        _ => command.to_vec(),
    };
    if argv.first().is_none_or(|a| a.is_empty()) {
        return Err(CliError::Usage("no command to run".into()));
    }
    Ok(argv)
}

/// The exit code a shell would report: the command's own, or 128 + the signal that killed it.
fn exit_code(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code).unwrap_or(1);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(signal) = status.signal() {
            return u8::try_from(128 + signal).unwrap_or(1);
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_argument_is_split_like_a_shell() {
        let split = command_line(&["echo 'a b' c".into()]).expect("split");
        assert_eq!(split, ["echo", "a b", "c"]);
        let given = command_line(&["echo".into(), "a b".into()]).expect("as given");
        assert_eq!(given, ["echo", "a b"]);
        assert!(command_line(&["echo 'open".into()]).is_err());
        assert!(command_line(&[String::new()]).is_err());
    }
}
