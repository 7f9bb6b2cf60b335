// SPDX-License-Identifier: Apache-2.0
//! `jetjobs dashboard`: the web UI (`jetjobs-dashboard`) in the foreground until Ctrl-C.

use std::net::SocketAddr;

use jetjobs_dashboard::{DEFAULT_LISTEN, Dashboard, DashboardOptions};
use serde_json::json;

use crate::connect::{ConnectArgs, shutdown_on_signal};
use crate::exit::CliError;
use crate::output::Output;

#[derive(Debug, clap::Args)]
pub(crate) struct DashboardArgs {
    /// Address to serve on; anything but loopback requires --access-token
    #[arg(long, default_value_t = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Access token every request must carry (a Bearer header, or `?token=` once in the browser)
    #[arg(long, env = "JETJOBS_DASHBOARD_TOKEN")]
    access_token: Option<String>,
}

impl DashboardArgs {
    pub(crate) async fn run(self, connect: &ConnectArgs, out: &Output) -> Result<(), CliError> {
        let mut options = DashboardOptions::new().listen(self.listen);
        if let Some(token) = self.access_token {
            options = options.token(token);
        }
        // Refused before connecting: a public address without a token.
        options
            .validate()
            .map_err(|e| CliError::Usage(e.to_string()))?;
        let client = connect.connect().await?;
        let dashboard = Dashboard::bind(client, options).await?;
        let url = dashboard.url();
        out.show(&json!({ "url": url }), |_| println!("dashboard: {url}"))?;
        dashboard.run(shutdown_on_signal()).await?;
        Ok(())
    }
}
