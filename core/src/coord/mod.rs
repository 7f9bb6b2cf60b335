// SPDX-License-Identifier: Apache-2.0
//! Coordination between processes: leader election on a KV bucket ([`election`]) and choria's
//! governor on a stream ([`governor`]) with its lifecycle events ([`lifecycle`]), and the per-key
//! ordering barrier ([`barrier`], pure state).

pub(crate) mod barrier;
pub(crate) mod election;
pub(crate) mod governor;
pub(crate) mod lifecycle;
