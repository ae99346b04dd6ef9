//! [`NoopBus`]: the cluster bus of a process that runs alone (no `PYLON_CLUSTER_BUS`).
//!
//! Owns nothing but its instance id and two idle channels, so that `subscribe` and
//! `generations` hand out receivers that simply never fire. Must never: do I/O, spawn a
//! task, serialize a payload or count anything; publishing costs one branch.

use std::sync::Arc;

use tokio::sync::{broadcast, watch};

use super::{BusStatus, Envelope, InstanceId};

/// The bus of a lone process: publish is accepted and goes nowhere; nothing is received.
#[derive(Debug, Clone)]
pub struct NoopBus {
    instance: InstanceId,
    namespace: Arc<str>,
    received: broadcast::Sender<Arc<Envelope>>,
    generation: Arc<watch::Sender<u64>>,
}

impl NoopBus {
    /// A no-op bus for `instance` (the namespace is only reported back).
    #[must_use]
    pub fn new(namespace: &str, instance: InstanceId) -> Self {
        let (received, _) = broadcast::channel(1);
        let (generation, _) = watch::channel(0);
        Self { instance, namespace: namespace.into(), received, generation: Arc::new(generation) }
    }

    /// This process's id.
    #[must_use]
    pub fn instance_id(&self) -> &InstanceId {
        &self.instance
    }

    /// The namespace given at creation.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A receiver that never yields (there is nobody else to hear from).
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.received.subscribe()
    }

    /// A generation watch that stays at 0.
    #[must_use]
    pub fn generations(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Always up, nothing counted.
    #[must_use]
    pub fn status(&self) -> BusStatus {
        BusStatus::noop()
    }
}
