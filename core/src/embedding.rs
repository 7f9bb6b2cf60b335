// SPDX-License-Identifier: Apache-2.0
//! The tokio runtime a language binding runs the engine on.
//!
//! In a binding, handlers run on the language's own thread (an asyncio loop, Node's event loop)
//! and the engine's threads only move messages. One engine thread does that with less CPU than
//! two: in a drain of 50,000 no-op tasks (concurrency 100, 2 cores) a second thread cost the
//! Python and Node workers about a sixth more CPU per task, in wake-ups between the threads, for
//! the same throughput.

/// A multi-thread runtime builder (so that any thread can `block_on` it) with one worker thread,
/// unless `TOKIO_WORKER_THREADS` sets the count, and every driver enabled.
pub fn embedded_runtime() -> tokio::runtime::Builder {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    // Left unset, tokio reads TOKIO_WORKER_THREADS itself.
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(1);
    }
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_engine_thread_unless_tokio_worker_threads_says_otherwise() {
        let expected = std::env::var("TOKIO_WORKER_THREADS")
            .map(|n| {
                n.parse::<usize>()
                    .expect("TOKIO_WORKER_THREADS is a number")
            })
            .unwrap_or(1);
        let runtime = embedded_runtime().build().expect("a runtime");
        assert_eq!(runtime.metrics().num_workers(), expected);
        // Any thread may wait on it, as the Python binding's blocking calls do.
        assert_eq!(runtime.block_on(async { 7 }), 7);
    }
}
