// SPDX-License-Identifier: Apache-2.0
//! Serves the dashboard until Ctrl-C or SIGTERM (the `jetjobs dashboard` command calls the same
//! library):
//!
//! ```text
//! cargo run -p jetjobs-dashboard --example serve -- --server nats://127.0.0.1:4222 \
//!     [--listen 127.0.0.1:8222] [--token TOKEN]
//! ```
//!
//! Prints `dashboard: URL` once it listens; exits 2 with a message for bad options (a
//! non-loopback `--listen` without `--token`).

use std::process::ExitCode;

use jetjobs::CancellationToken;
use jetjobs_dashboard::{Dashboard, DashboardOptions};

fn usage() -> ExitCode {
    eprintln!("usage: serve [--server URL] [--listen ADDR:PORT] [--token TOKEN]");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut server = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let mut options = DashboardOptions::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let Some(value) = args.next() else {
            return usage();
        };
        match arg.as_str() {
            "--server" => server = value,
            "--listen" => match value.parse() {
                Ok(addr) => options = options.listen(addr),
                Err(e) => {
                    eprintln!("error: --listen {value:?}: {e}");
                    return ExitCode::from(2);
                }
            },
            "--token" => options = options.token(value),
            _ => return usage(),
        }
    }
    // Refuse bad options before connecting.
    if let Err(e) = options.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let client = match jetjobs::connect(&server).await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: connecting to {server}: {e}");
            return ExitCode::from(1);
        }
    };
    let dashboard = match Dashboard::bind(client, options).await {
        Ok(dashboard) => dashboard,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    println!("dashboard: {}", dashboard.url());
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            shutdown.cancel();
        }
    });
    match dashboard.run(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
