// SPDX-License-Identifier: Apache-2.0
//! Connection flags shared by every command, turned into the core's `ClientOptions`.

use std::path::PathBuf;

use clap::Args;
use jetjobs::{CancellationToken, Client, ClientOptions};

use crate::exit::CliError;

/// How to reach NATS.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub(crate) struct ConnectArgs {
    /// NATS server URL(s), comma separated
    #[arg(
        short = 's',
        long = "server",
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        hide_env_values = true,
        global = true,
        value_name = "URL"
    )]
    server: String,

    /// A NATS credentials (.creds) file
    #[arg(long, global = true, value_name = "FILE")]
    creds: Option<PathBuf>,

    /// User name for user and password authentication
    #[arg(long, global = true, requires = "password")]
    user: Option<String>,

    /// Password for user and password authentication
    #[arg(long, global = true, requires = "user")]
    password: Option<String>,

    /// Token authentication
    #[arg(long, global = true)]
    token: Option<String>,

    /// A CA certificate to trust (enables TLS)
    #[arg(long, global = true, value_name = "FILE")]
    tls_ca: Option<PathBuf>,

    /// A client certificate (with --tls-key; enables TLS)
    #[arg(long, global = true, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The client certificate's key (with --tls-cert)
    #[arg(long, global = true, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl ConnectArgs {
    /// The core's options for these flags; callers add the queue and worker settings they need.
    pub(crate) fn options(&self) -> ClientOptions {
        let mut options = ClientOptions::new()
            .connection_name(format!("jetjobs CLI {}", env!("CARGO_PKG_VERSION")));
        if let Some(creds) = &self.creds {
            options = options.credentials_file(creds);
        }
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            options = options.user_and_password(user, password);
        }
        if let Some(token) = &self.token {
            options = options.token(token);
        }
        if let Some(ca) = &self.tls_ca {
            options = options.tls_ca(ca);
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            options = options.tls_client_cert(cert, key);
        }
        options
    }

    /// Connects with `options` (from [`ConnectArgs::options`]). As `ajc`, this prepares the
    /// asyncjobs storage and the client's default queue (`DEFAULT` unless `options` name one).
    pub(crate) async fn connect_with(&self, options: ClientOptions) -> Result<Client, CliError> {
        Ok(options.connect(&self.server).await?)
    }

    /// Connects with the flags alone.
    pub(crate) async fn connect(&self) -> Result<Client, CliError> {
        self.connect_with(self.options()).await
    }
}

/// Cancelled on the first Ctrl-C (SIGINT) or SIGTERM, so long-running commands stop gracefully
/// whether a person or a service manager stops them.
pub(crate) fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        cancel.cancel();
    });
    token
}

/// The name this process campaigns and holds leases with: the host name, as choria uses the
/// host's identity.
pub(crate) fn identity() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "jetjobs".into())
}
