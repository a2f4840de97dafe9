//! [`AppState`]: the settings, live region state, metrics, retry budget and rate limiter every
//! handler and prober shares.

use std::ops::Deref;
use std::sync::Arc;

use cluster_config::AdminToken;

use crate::budget::RetryBudget;
use crate::limit::Limiter;
use crate::metrics::Metrics;
use crate::regions::Regions;
use crate::settings::Settings;

/// Everything the handlers and probers share; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

#[derive(Debug)]
pub struct Shared {
    pub settings: Settings,
    pub regions: Regions,
    pub metrics: Metrics,
    pub budget: RetryBudget,
    /// `None`: admin endpoints answer 403 "not configured".
    pub admin_token: Option<AdminToken>,
    /// Per-client limits, shared by every worker; `None` when `[router.rate_limit]` is off.
    pub limiter: Option<Arc<Limiter>>,
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(settings: Settings, admin_token: Option<AdminToken>) -> Result<Self, prometheus::Error> {
        let regions = Regions::new(&settings);
        let metrics = Metrics::new(&regions.names())?;
        let budget = RetryBudget::new(settings.budget);
        let limiter = Limiter::new(&settings.rate_limit, &metrics)?;
        Ok(Self(Arc::new(Shared { settings, regions, metrics, budget, admin_token, limiter })))
    }
}
