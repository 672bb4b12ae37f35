//! Single-flight: concurrent read-throughs of one key run the loader once and share its outcome.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

/// A finished load, type-erased so one map serves every value type: `Ok(T)` or `Err(E)`.
pub(crate) type Outcome = Result<Arc<dyn Any + Send + Sync>, Arc<dyn Any + Send + Sync>>;

type Slot = watch::Sender<Option<Outcome>>;

/// The loads in progress, by key.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    in_progress: Mutex<HashMap<String, Arc<Slot>>>,
}

/// What a caller does for a key: load it, or wait for whoever is.
pub(crate) enum Role<'a> {
    Leader(Leader<'a>),
    Follower(watch::Receiver<Option<Outcome>>),
}

impl Flights {
    pub(crate) fn join(&self, key: &str) -> Role<'_> {
        let mut map = self
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = map.get(key) {
            return Role::Follower(slot.subscribe());
        }
        let slot = Arc::new(watch::Sender::new(None));
        map.insert(key.to_owned(), Arc::clone(&slot));
        Role::Leader(Leader {
            flights: self,
            key: key.to_owned(),
            slot,
        })
    }

    fn remove(&self, key: &str, slot: &Arc<Slot>) {
        let mut map = self
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map
            .get(key)
            .is_some_and(|current| Arc::ptr_eq(current, slot))
        {
            map.remove(key);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The one caller running the loader for a key. The flight ends when it is dropped: waiters
/// still without an outcome then (the leader's future was cancelled) elect a new leader.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: String,
    slot: Arc<Slot>,
}

impl Leader<'_> {
    /// Hands the outcome to every waiter, and to any that join until the leader is dropped.
    pub(crate) fn publish(&self, outcome: Outcome) {
        self.slot.send_replace(Some(outcome));
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.flights.remove(&self.key, &self.slot);
        // Dropping the last sender wakes waiters still without an outcome: the channel closes.
    }
}

/// Waits for the leader; `None` when it gave up without an outcome.
pub(crate) async fn wait(mut rx: watch::Receiver<Option<Outcome>>) -> Option<Outcome> {
    rx.wait_for(Option::is_some)
        .await
        .ok()
        .and_then(|outcome| outcome.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_outcome() {
        let flights = Flights::default();
        let Role::Leader(leader) = flights.join("k") else {
            panic!("first caller leads")
        };
        let Role::Follower(rx) = flights.join("k") else {
            panic!("second caller follows")
        };
        leader.publish(Ok(Arc::new(5_u32)));
        drop(leader);
        let got = wait(rx)
            .await
            .and_then(|o| o.ok())
            .and_then(|v| v.downcast_ref::<u32>().copied());
        assert_eq!(got, Some(5));
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn an_abandoned_flight_releases_its_waiters_and_the_key() {
        let flights = Flights::default();
        let Role::Leader(leader) = flights.join("k") else {
            panic!("first caller leads")
        };
        let Role::Follower(rx) = flights.join("k") else {
            panic!("second caller follows")
        };
        drop(leader);
        assert!(wait(rx).await.is_none());
        assert!(matches!(flights.join("k"), Role::Leader(_)));
    }
}
