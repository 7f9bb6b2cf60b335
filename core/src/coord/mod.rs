// SPDX-License-Identifier: Apache-2.0
//! Coordination between processes on KV buckets: leader election ([`election`]).

pub(crate) mod election;
