// SPDX-License-Identifier: Apache-2.0
//! The tokio runtime napi runs the engine's futures on: the core's [`jetjobs::embedded_runtime`]
//! (one engine thread unless `TOKIO_WORKER_THREADS` is set), handed to napi when the addon loads.

#[napi_derive::module_init]
fn use_embedded_runtime() {
    match jetjobs::embedded_runtime().thread_name("jetjobs").build() {
        Ok(runtime) => napi::bindgen_prelude::create_custom_tokio_runtime(runtime),
        // napi then builds its default runtime on first use.
        Err(e) => eprintln!("jetjobs: could not build the engine's runtime ({e}); using napi's"),
    }
}
