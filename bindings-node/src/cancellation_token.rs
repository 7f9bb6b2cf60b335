// SPDX-License-Identifier: Apache-2.0
//! `CancellationToken`: the core's stop signal, as `Worker.run` takes it (twice: graceful stop
//! and hard stop) and as a supervised worker or job gets it for each run (`lib/supervisor.ts`
//! turns it into an `AbortSignal`).

use napi::Env;
use napi::bindgen_prelude::PromiseRaw;
use napi_derive::napi;

use crate::error::promise;

/// Cancelling it tells a `Worker.run` to stop (see `Worker.run` for which stop).
#[napi]
#[derive(Default)]
pub struct CancellationToken {
    pub(crate) inner: jetjobs::CancellationToken,
}

#[napi]
impl CancellationToken {
    #[napi(constructor)]
    pub fn new() -> Self {
        Self::default()
    }

    #[napi]
    pub fn cancel(&self) {
        self.inner.cancel();
    }

    #[napi(getter)]
    pub fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }

    /// Resolves once the token is cancelled (at once if it is already).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn cancelled<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let token = self.inner.clone();
        promise(
            env,
            async move {
                token.cancelled().await;
                Ok(())
            },
            |()| (),
        )
    }
}
