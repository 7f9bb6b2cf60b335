// SPDX-License-Identifier: Apache-2.0
//! Coordination between processes: leader election on a KV bucket ([`election`]) and choria's
//! governor on a stream ([`governor`]).

pub(crate) mod election;
pub(crate) mod governor;
