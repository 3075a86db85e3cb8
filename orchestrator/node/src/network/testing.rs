//! An in-memory [`PodNetwork`] for tests of the agent: no namespace, no plugin. Each
//! pod set up gets the next address of 10.88.0.0/16 and a made-up netns path; a test
//! can make setups fail and reads back the setups and teardowns the agent asked for.
//!
//! Lock: one, `state`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{NetworkError, PodNetwork, PodNetworkSpec, PodNetworkStatus};

#[derive(Default)]
pub struct FakeNetwork {
    state: Mutex<FakeNetworkState>,
}

#[derive(Default)]
struct FakeNetworkState {
    pods: BTreeMap<String, PodNetworkStatus>,
    last_address: u16,
    setup_error: Option<String>,
    setups: Vec<PodNetworkSpec>,
    teardowns: Vec<String>,
}

impl FakeNetwork {
    pub fn new() -> Self {
        FakeNetwork::default()
    }

    fn lock(&self) -> MutexGuard<'_, FakeNetworkState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Setups fail with a plugin error carrying `message` (None: they succeed again).
    pub fn fail_setups(&self, message: Option<&str>) {
        self.lock().setup_error = message.map(str::to_string);
    }

    /// Every setup asked for, in order (repeats included).
    pub fn setups(&self) -> Vec<PodNetworkSpec> {
        self.lock().setups.clone()
    }

    /// Every teardown asked for, in order.
    pub fn teardowns(&self) -> Vec<String> {
        self.lock().teardowns.clone()
    }

    /// The pods with a network now.
    pub fn pods(&self) -> Vec<String> {
        self.lock().pods.keys().cloned().collect()
    }
}

impl PodNetwork for FakeNetwork {
    fn setup(&self, pod: &PodNetworkSpec) -> Result<PodNetworkStatus, NetworkError> {
        let mut state = self.lock();
        state.setups.push(pod.clone());
        if let Some(message) = &state.setup_error {
            return Err(NetworkError::Plugin {
                plugin: "bridge".into(),
                command: "ADD",
                pod: format!("{}/{}", pod.namespace, pod.name),
                message: message.clone(),
            });
        }
        if let Some(status) = state.pods.get(&pod.pod_uid) {
            return Ok(status.clone());
        }
        state.last_address += 1;
        let [high, low] = state.last_address.to_be_bytes();
        let status = PodNetworkStatus {
            netns: PathBuf::from(format!("/run/netns/{}", pod.pod_uid)),
            ip: IpAddr::V4(Ipv4Addr::new(10, 88, high, low)),
        };
        state.pods.insert(pod.pod_uid.clone(), status.clone());
        Ok(status)
    }

    fn teardown(&self, pod_uid: &str) -> Result<(), NetworkError> {
        let mut state = self.lock();
        state.teardowns.push(pod_uid.to_string());
        state.pods.remove(pod_uid);
        Ok(())
    }

    fn list(&self) -> Vec<String> {
        self.pods()
    }
}
