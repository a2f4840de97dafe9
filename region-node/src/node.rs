//! A region node's state: settings, the model slot and its swapper, the cache, metrics.
//!
//! [`Node`] is cheap to clone (one `Arc`) and is what the HTTP layer gets. Background work
//! (pointer polling, Redis monitoring) is started explicitly with [`Node::start`], so tests
//! can build a node, drive a check by hand, and own the tasks' lifetime.

use std::sync::Arc;
use std::time::Instant;

use store::Bucket;
use tokio::task::JoinHandle;

use crate::cache::{Cache, CacheError};
use crate::metrics::Metrics;
use crate::peers::Peers;
use crate::service::Service;
use crate::settings::Settings;
use crate::swap::{ModelSlot, Swapper};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot register metrics")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("cannot start the model loader thread")]
    Loader(#[source] std::io::Error),
    #[error("cannot build the HTTP client for other regions")]
    Peers(#[source] reqwest::Error),
}

#[derive(Clone)]
pub struct Node(Arc<Inner>);

struct Inner {
    settings: Settings,
    slot: Arc<ModelSlot>,
    swapper: Swapper,
    cache: Arc<Cache>,
    service: Service,
    metrics: Metrics,
    /// The other regions' nodes (FastAPI-layout region routes, cross-region requests).
    peers: Peers,
    started: Instant,
    /// Names this run of the node (counters restart from 0 with a new one).
    instance: String,
}

/// The node's background tasks; dropping this stops them.
pub struct Background {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Node {
    /// Build the node with an empty model slot. Must run inside a Tokio runtime (the Redis
    /// connection manager lives there); connects to nothing yet.
    pub fn new(settings: Settings, bucket: Bucket) -> Result<Self, NodeError> {
        let metrics = Metrics::new()?;
        let cache = Arc::new(Cache::new(
            &settings.region,
            &settings.redis_url,
            settings.cache.clone(),
            metrics.cache.clone(),
        )?);
        let slot = Arc::new(ModelSlot::default());
        let swapper = Swapper::new(bucket, slot.clone(), metrics.swap.clone(), settings.swap_priority)
            .map_err(NodeError::Loader)?;
        let service =
            Service::new(slot.clone(), cache.clone(), metrics.computations.clone(), settings.faults.clone());
        let peers = Peers::new(settings.topology.clone()).map_err(NodeError::Peers)?;
        let started = Instant::now();
        let instance = format!("{:016x}", rand::random::<u64>());
        Ok(Self(Arc::new(Inner {
            settings,
            slot,
            swapper,
            cache,
            service,
            metrics,
            peers,
            started,
            instance,
        })))
    }

    /// Start polling the model pointer (first check at once) and monitoring Redis.
    pub fn start(&self) -> Background {
        let monitor = self.clone();
        let poll = self.0.settings.poll.clone();
        Background {
            tasks: vec![
                self.0.swapper.spawn_poll(poll),
                tokio::spawn(async move { monitor.0.cache.monitor().await }),
            ],
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    pub fn region(&self) -> &str {
        &self.0.settings.region
    }

    pub fn slot(&self) -> &ModelSlot {
        &self.0.slot
    }

    pub fn swapper(&self) -> &Swapper {
        &self.0.swapper
    }

    pub fn cache(&self) -> &Cache {
        &self.0.cache
    }

    pub fn service(&self) -> &Service {
        &self.0.service
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    pub fn peers(&self) -> &Peers {
        &self.0.peers
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.0.started.elapsed()
    }

    pub fn instance(&self) -> &str {
        &self.0.instance
    }
}
