// SPDX-License-Identifier: Apache-2.0
//! `Governor`, `Lease`, `GovernorManager`: choria's network-wide concurrency governor. Lease
//! sequences are JS numbers (stream sequences, exact up to 2^53 - 1); durations and times are
//! milliseconds. `withSlot` and `Symbol.asyncDispose` are sugar in `lib/governor.ts`.

use std::sync::{Arc, Mutex, PoisonError};

use napi::Env;
use napi::bindgen_prelude::PromiseRaw;
use napi_derive::napi;

use crate::cancellation_token::CancellationToken;
use crate::client::Client;
use crate::error::{check, duration_ms, integer, invalid_option, promise, to_ms};
use crate::retry::RetryPolicy;

/// How a `Governor` campaigns.
#[napi(object, object_to_js = false)]
pub struct GovernorOptions {
    /// The campaign subject; default `$GOVERNOR.campaign.<name>`.
    pub subject: Option<String>,
    /// Pause between tries while the governor is full (default 250).
    pub interval_ms: Option<f64>,
    /// Leases are kept until the governor's max age ("max per period").
    pub without_leaving: Option<bool>,
    /// Publish choria's lifecycle events (`enter`, `exit`, `timeouts`) on
    /// `choria.lifecycle.event.governor.<lifecycleComponent>`.
    pub lifecycle_component: Option<String>,
    /// The identity of those events; default: each holder's name.
    pub lifecycle_identity: Option<String>,
}

/// Settings of a governor, used when it is created or updated.
#[napi(object, object_to_js = false)]
pub struct GovernorManagerOptions {
    /// Leases are evicted after this; 0 (the default): never, else at least 100.
    pub max_age_ms: Option<f64>,
    /// Stream replicas (default 1).
    pub replicas: Option<u32>,
    /// The campaign subject; default `$GOVERNOR.campaign.<name>`.
    pub subject: Option<String>,
    /// `evict` publishes choria's `eviction` lifecycle event on
    /// `choria.lifecycle.event.governor.<lifecycleComponent>`.
    pub lifecycle_component: Option<String>,
}

/// One lease of a governor as the manager lists it.
#[napi(object, object_from_js = false)]
pub struct GovernorLease {
    pub seq: f64,
    pub holder: String,
    /// When it was taken, in ms since the epoch.
    pub taken_at_ms: f64,
}

/// A whole number of at least 0 from JS.
fn whole(what: &str, n: f64) -> jetjobs::Result<u64> {
    u64::try_from(integer(what, n)?)
        .map_err(|_| invalid_option(format!("{what} must not be negative, got {n}")))
}

fn epoch_ms(t: jetjobs::Timestamp) -> f64 {
    t.unix_nanos() as f64 / 1e6
}

/// A held slot of a governor; `release()` gives it back.
#[napi]
pub struct Lease {
    /// `None` only while dropping.
    inner: Option<jetjobs::Lease>,
    /// The runtime the lease was taken on: a lease dropped by the JS garbage collector is given
    /// back in the background there.
    runtime: tokio::runtime::Handle,
}

impl Lease {
    fn new(inner: jetjobs::Lease) -> Self {
        Self {
            inner: Some(inner),
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _runtime = self.runtime.enter();
        drop(self.inner.take());
    }
}

#[napi]
impl Lease {
    /// The lease's id: its message's stream sequence.
    #[napi(getter)]
    pub fn seq(&self) -> f64 {
        self.inner.as_ref().map_or(0.0, |l| l.seq() as f64)
    }

    /// Gives the slot back (unless the governor keeps leases for the period); a second call does
    /// nothing. `LeaseNotFound` if it was evicted meanwhile.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn release<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let lease = self.inner.clone();
        promise(
            env,
            async move {
                match lease {
                    Some(lease) => lease.release().await,
                    None => Ok(()),
                }
            },
            |()| (),
        )
    }
}

/// Campaigns for slots of one governor (choria's `Governor`).
#[napi]
pub struct Governor {
    pub(crate) inner: jetjobs::Governor,
    name: String,
}

#[napi]
impl Governor {
    /// Campaigns for governor `name`; `backoff` paces tries after the first retry.
    #[napi(constructor)]
    pub fn new(
        env: Env,
        client: &Client,
        name: String,
        options: Option<GovernorOptions>,
        backoff: Option<&RetryPolicy>,
    ) -> napi::Result<Self> {
        let mut inner = check(&env, jetjobs::Governor::new(&client.client(&env)?, &name))?;
        if let Some(options) = options {
            if let Some(subject) = options.subject {
                inner = inner.subject(subject);
            }
            if let Some(ms) = options.interval_ms {
                inner = inner.interval(check(&env, duration_ms("intervalMs", ms))?);
            }
            if options.without_leaving == Some(true) {
                inner = inner.without_leaving();
            }
            if let Some(component) = options.lifecycle_component {
                inner = check(&env, inner.lifecycle(component))?;
            }
            if let Some(identity) = options.lifecycle_identity {
                inner = inner.lifecycle_identity(identity);
            }
        }
        if let Some(policy) = backoff {
            inner = inner.backoff(policy.inner.clone());
        }
        Ok(Self { inner, name })
    }

    /// The governor's name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// One try: a lease, or null while the governor is full.
    #[napi(ts_return_type = "Promise<Lease | null>")]
    pub fn try_start<'env>(
        &self,
        env: &'env Env,
        holder: String,
    ) -> napi::Result<PromiseRaw<'env, Option<Lease>>> {
        let governor = self.inner.clone();
        promise(
            env,
            async move {
                let lease = governor.try_start(&holder).await?;
                Ok(lease.map(Lease::new))
            },
            |l| l,
        )
    }

    /// Campaigns until a slot is free; `Timeout` once `maxWaitMs` passes or `cancel` is
    /// cancelled. Only "full" is tried again; any other error is final.
    #[napi(ts_return_type = "Promise<Lease>")]
    pub fn start<'env>(
        &self,
        env: &'env Env,
        holder: String,
        max_wait_ms: Option<f64>,
        cancel: Option<&CancellationToken>,
    ) -> napi::Result<PromiseRaw<'env, Lease>> {
        let governor = self.inner.clone();
        let max_wait = check(
            env,
            max_wait_ms
                .map(|ms| duration_ms("maxWaitMs", ms))
                .transpose(),
        )?;
        let cancel = cancel.map(|c| c.inner.clone()).unwrap_or_default();
        promise(
            env,
            async move {
                let lease = governor.start(&holder, max_wait, &cancel).await?;
                Ok(Lease::new(lease))
            },
            |l| l,
        )
    }
}

/// Creates, changes and inspects a governor (choria's `Manager`).
#[napi]
pub struct GovernorManager {
    inner: Arc<Mutex<jetjobs::GovernorManager>>,
}

/// `manager` reporting evictions as `component`, if given.
fn reporting(
    manager: jetjobs::GovernorManager,
    component: Option<String>,
) -> jetjobs::Result<jetjobs::GovernorManager> {
    match component {
        Some(component) => manager.lifecycle(component),
        None => Ok(manager),
    }
}

impl From<jetjobs::GovernorManager> for GovernorManager {
    fn from(inner: jetjobs::GovernorManager) -> Self {
        Self {
            inner: Arc::new(Mutex::new(inner)),
        }
    }
}

impl GovernorManager {
    fn get(&self) -> jetjobs::GovernorManager {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs a setting change on a copy, then keeps the updated manager.
    fn change<'env, F, Fut>(&self, env: &'env Env, f: F) -> napi::Result<PromiseRaw<'env, ()>>
    where
        F: FnOnce(jetjobs::GovernorManager) -> Fut + Send + 'static,
        Fut: Future<Output = jetjobs::Result<jetjobs::GovernorManager>> + Send + 'static,
    {
        let (manager, slot) = (self.get(), self.inner.clone());
        promise(
            env,
            async move {
                let updated = f(manager).await?;
                *slot.lock().unwrap_or_else(PoisonError::into_inner) = updated;
                Ok(())
            },
            |()| (),
        )
    }
}

#[napi]
impl GovernorManager {
    /// Governor `name` with at most `limit` holders; created if it does not exist, an existing
    /// one updated to these settings.
    #[napi(ts_return_type = "Promise<GovernorManager>")]
    pub fn create<'env>(
        env: &'env Env,
        client: &Client,
        name: String,
        limit: f64,
        options: Option<GovernorManagerOptions>,
    ) -> napi::Result<PromiseRaw<'env, GovernorManager>> {
        let client = client.client(env)?;
        let options = options.unwrap_or(GovernorManagerOptions {
            max_age_ms: None,
            replicas: None,
            subject: None,
            lifecycle_component: None,
        });
        let limit = check(env, whole("limit", limit))?;
        let max_age = check(
            env,
            duration_ms("maxAgeMs", options.max_age_ms.unwrap_or(0.0)),
        )?;
        let replicas = options.replicas.unwrap_or(1) as usize;
        let (subject, component) = (options.subject, options.lifecycle_component);
        promise(
            env,
            async move {
                let manager = jetjobs::GovernorManager::create(
                    &client,
                    &name,
                    limit,
                    max_age,
                    replicas,
                    subject.as_deref(),
                )
                .await?;
                reporting(manager, component)
            },
            GovernorManager::from,
        )
    }

    /// A per-key governor (a jetjobs extension, not choria's): at most `perKey` holders for each
    /// key, e.g. per tenant, in one stream; routes use it with `governorKey`. An existing one is
    /// used as it is. It has no `subject` (`InvalidOption`).
    #[napi(ts_return_type = "Promise<GovernorManager>")]
    pub fn create_per_key<'env>(
        env: &'env Env,
        client: &Client,
        name: String,
        per_key: f64,
        options: Option<GovernorManagerOptions>,
    ) -> napi::Result<PromiseRaw<'env, GovernorManager>> {
        let client = client.client(env)?;
        let per_key = check(env, whole("limit", per_key))?;
        let (mut max_age, mut replicas, mut component) = (Default::default(), 1, None);
        if let Some(options) = options {
            if options.subject.is_some() {
                return Err(crate::error::js_error(
                    env,
                    invalid_option("a per-key governor's subjects are its own: no subject"),
                ));
            }
            max_age = check(
                env,
                duration_ms("maxAgeMs", options.max_age_ms.unwrap_or(0.0)),
            )?;
            replicas = options.replicas.unwrap_or(1) as usize;
            component = options.lifecycle_component;
        }
        promise(
            env,
            async move {
                let manager = jetjobs::GovernorManager::create_per_key(
                    &client, &name, per_key, max_age, replicas,
                )
                .await?;
                reporting(manager, component)
            },
            GovernorManager::from,
        )
    }

    /// The existing governor `name`, never created; `GovernorNotFound` otherwise. With
    /// `lifecycleComponent`, `evict` publishes choria's `eviction` lifecycle event.
    #[napi(ts_return_type = "Promise<GovernorManager>")]
    pub fn load<'env>(
        env: &'env Env,
        client: &Client,
        name: String,
        lifecycle_component: Option<String>,
    ) -> napi::Result<PromiseRaw<'env, GovernorManager>> {
        let client = client.client(env)?;
        promise(
            env,
            async move {
                let manager = jetjobs::GovernorManager::load(&client, &name).await?;
                reporting(manager, lifecycle_component)
            },
            GovernorManager::from,
        )
    }

    /// Names of the governors of `collective` (subjects `<collective>.governor.*`), sorted.
    #[napi(ts_return_type = "Promise<string[]>")]
    pub fn list<'env>(
        env: &'env Env,
        client: &Client,
        collective: String,
    ) -> napi::Result<PromiseRaw<'env, Vec<String>>> {
        let client = client.client(env)?;
        promise(
            env,
            async move { jetjobs::GovernorManager::list(&client, &collective).await },
            |names| names,
        )
    }

    /// The subject choria uses for governor `name` of `collective`.
    #[napi]
    pub fn collective_subject(collective: String, name: String) -> String {
        jetjobs::collective_subject(&collective, &name)
    }

    #[napi(getter)]
    pub fn name(&self) -> String {
        self.get().name().to_owned()
    }

    /// Most holders at once.
    #[napi(getter)]
    pub fn limit(&self) -> f64 {
        self.get().limit() as f64
    }

    /// How long a lease lasts at most (0: until released).
    #[napi(getter)]
    pub fn max_age_ms(&self) -> f64 {
        to_ms(self.get().max_age())
    }

    /// The campaign subject.
    #[napi(getter)]
    pub fn subject(&self) -> String {
        self.get().subject().to_owned()
    }

    /// The stream's replicas.
    #[napi(getter)]
    pub fn replicas(&self) -> u32 {
        u32::try_from(self.get().replicas()).unwrap_or(u32::MAX)
    }

    /// Changes the limit for every holder at once.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_limit<'env>(
        &self,
        env: &'env Env,
        limit: f64,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let limit = check(env, whole("limit", limit))?;
        self.change(env, move |mut m| async move {
            m.set_limit(limit).await.map(|()| m)
        })
    }

    /// Changes how long leases last at most.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_max_age_ms<'env>(
        &self,
        env: &'env Env,
        max_age_ms: f64,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let max_age = check(env, duration_ms("maxAgeMs", max_age_ms))?;
        self.change(env, move |mut m| async move {
            m.set_max_age(max_age).await.map(|()| m)
        })
    }

    /// Changes the campaign subject.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_subject<'env>(
        &self,
        env: &'env Env,
        subject: String,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        self.change(env, move |mut m| async move {
            m.set_subject(&subject).await.map(|()| m)
        })
    }

    /// Removes every lease.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn reset<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let manager = self.get();
        promise(env, async move { manager.reset().await }, |()| ())
    }

    /// Leases held now.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn active<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, f64>> {
        let manager = self.get();
        promise(env, async move { manager.active().await }, |n| n as f64)
    }

    /// When the newest lease was taken, in ms since the epoch; null if none ever was.
    #[napi(ts_return_type = "Promise<number | null>")]
    pub fn last_active_ms<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<PromiseRaw<'env, Option<f64>>> {
        let manager = self.get();
        promise(env, async move { manager.last_active().await }, |t| {
            t.map(|t| epoch_ms(t.into()))
        })
    }

    /// Every lease.
    #[napi(ts_return_type = "Promise<GovernorLease[]>")]
    pub fn leases<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<PromiseRaw<'env, Vec<GovernorLease>>> {
        let manager = self.get();
        promise(env, async move { manager.leases().await }, |leases| {
            leases
                .into_iter()
                .map(|(seq, holder, at)| GovernorLease {
                    seq: seq as f64,
                    holder,
                    taken_at_ms: epoch_ms(at.into()),
                })
                .collect()
        })
    }

    /// Removes lease `seq`, resolving to its holder's name; `LeaseNotFound` if there is none.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn evict<'env>(&self, env: &'env Env, seq: f64) -> napi::Result<PromiseRaw<'env, String>> {
        let manager = self.get();
        let seq = check(env, whole("seq", seq))?;
        promise(env, async move { manager.evict(seq).await }, |h| h)
    }

    /// Deletes the governor and its leases.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn delete<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let manager = self.get();
        promise(env, async move { manager.delete().await }, |()| ())
    }
}
