// SPDX-License-Identifier: Apache-2.0
//! `renderMetrics`: the core's process-wide Prometheus metrics as text.

use napi_derive::napi;

/// Every metric of this process in Prometheus' text exposition format (version 0.0.4), for a
/// server of your own; `ClientOptions.prometheusPort` serves it from workers and schedulers.
#[napi]
pub fn render_metrics() -> String {
    jetjobs::render_metrics()
}
