// SPDX-License-Identifier: Apache-2.0
//! `jetjobs dev-server`: a throwaway local nats-server with JetStream (`jetjobs::DevServer`) in
//! the foreground, for demos and local development.

use serde_json::json;

use crate::connect::shutdown_on_signal;
use crate::exit::CliError;
use crate::output::Output;

pub(crate) async fn run(out: &Output) -> Result<(), CliError> {
    let shutdown = shutdown_on_signal();
    // Starting waits (blocking) until JetStream is ready; keep that off the async workers.
    let server = tokio::task::spawn_blocking(jetjobs::DevServer::start)
        .await
        .map_err(|e| CliError::Failed(format!("starting nats-server: {e}")))??;
    // The URL goes first and alone on stdout so scripts can read it; the rest is for people.
    out.show(
        &json!({
            "url": server.url(),
            "pid": server.pid(),
            "store_dir": server.store_dir(),
        }),
        |_| println!("{}", server.url()),
    )?;
    eprintln!(
        "nats-server with JetStream at {} (store {}); Ctrl-C stops it and removes the store",
        server.url(),
        server.store_dir().display()
    );
    shutdown.cancelled().await;
    // Dropping the server stops it and removes its store, off the async workers as well.
    let _ = tokio::task::spawn_blocking(move || drop(server)).await;
    eprintln!("nats-server stopped");
    Ok(())
}
