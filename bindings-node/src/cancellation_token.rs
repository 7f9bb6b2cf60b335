// SPDX-License-Identifier: Apache-2.0
//! `CancellationToken`: the core's stop signal, as `Worker.run` takes it (twice: graceful stop
//! and hard stop).

use napi_derive::napi;

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
}
