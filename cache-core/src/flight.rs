//! Single-flight: concurrent callers for one key elect one leader to do the work; the others
//! wait and share its outcome.
//!
//! The cache's read-through uses it so that 1,000 concurrent misses run the loader once; the
//! HTTP adapters use it so that concurrent misses for one URL make one request to the origin.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

type Slot<V> = watch::Sender<Option<V>>;

/// The work in progress, by key.
///
/// ```
/// use cache_core::flight::{Flight, SingleFlight};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let flights = SingleFlight::<u32>::new();
/// let Flight::Leader(leader) = flights.join("report:7") else { unreachable!() };
/// let Flight::Follower(follower) = flights.join("report:7") else { unreachable!() };
/// leader.publish(42);   // every waiter gets a clone
/// drop(leader);         // the flight ends; the next join leads again
/// assert_eq!(follower.wait().await, Some(42));
/// # }
/// ```
pub struct SingleFlight<V> {
    in_progress: Mutex<HashMap<String, Arc<Slot<V>>>>,
    /// Flights ended so far, any key.
    ended: AtomicU64,
}

impl<V> fmt::Debug for SingleFlight<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("SingleFlight")
            .field("in_progress", &n)
            .finish()
    }
}

impl<V> Default for SingleFlight<V> {
    fn default() -> Self {
        Self {
            in_progress: Mutex::new(HashMap::new()),
            ended: AtomicU64::new(0),
        }
    }
}

/// What a caller does for a key: do the work, or wait for whoever is.
#[derive(Debug)]
#[must_use = "a dropped Leader ends its flight at once, and a dropped Follower waits for nothing"]
pub enum Flight<'a, V> {
    /// The caller does the work and publishes its outcome.
    Leader(Leader<'a, V>),
    /// Someone else is doing it: wait for their outcome.
    Follower(Follower<V>),
}

impl<V: Clone> SingleFlight<V> {
    /// No work in progress.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether work for `key` is in progress (a hint: it may start or end right after).
    ///
    /// ```
    /// let flights = cache_core::flight::SingleFlight::<u32>::new();
    /// let leader = flights.join("report:7");
    /// assert!(flights.is_running("report:7"));
    /// drop(leader);
    /// assert!(!flights.is_running("report:7"));
    /// ```
    pub fn is_running(&self, key: &str) -> bool {
        self.in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(key)
    }

    /// How many flights (of any key) have ended so far. A caller that read it before looking for
    /// a result and finds it unchanged when it comes to lead knows that no flight ended in
    /// between, so none stored a result it could have missed: it need not look again.
    ///
    /// ```
    /// use cache_core::flight::SingleFlight;
    ///
    /// let flights = SingleFlight::<u32>::new();
    /// let before = flights.ended();
    /// drop(flights.join("report:7")); // a leader that gave up: its flight ended
    /// assert_eq!(flights.ended(), before + 1);
    /// ```
    pub fn ended(&self) -> u64 {
        self.ended.load(Ordering::Acquire)
    }

    /// Leads the work for `key`, or follows whoever already does.
    pub fn join(&self, key: &str) -> Flight<'_, V> {
        let mut map = self
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = map.get(key) {
            return Flight::Follower(Follower {
                rx: slot.subscribe(),
            });
        }
        let slot = Arc::new(watch::Sender::new(None));
        map.insert(key.to_owned(), Arc::clone(&slot));
        Flight::Leader(Leader {
            flights: self,
            key: key.to_owned(),
            slot,
        })
    }
}

/// The one caller doing the work for a key. The flight ends when it is dropped: followers still
/// without an outcome then (the leader gave up, or its future was cancelled) get `None` and
/// may join again, electing a new leader.
#[must_use = "dropping the Leader ends the flight: its followers get `None` and elect another"]
pub struct Leader<'a, V> {
    flights: &'a SingleFlight<V>,
    key: String,
    slot: Arc<Slot<V>>,
}

impl<V> fmt::Debug for Leader<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leader")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl<V> Leader<'_, V> {
    /// Hands the outcome to every follower, and to any that join until the leader is dropped.
    pub fn publish(&self, outcome: V) {
        self.slot.send_replace(Some(outcome));
    }
}

impl<V> Drop for Leader<'_, V> {
    fn drop(&mut self) {
        let mut map = self
            .flights
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map
            .get(&self.key)
            .is_some_and(|current| Arc::ptr_eq(current, &self.slot))
        {
            map.remove(&self.key);
        }
        // Under the lock, after whatever the leader stored: a caller that then leads the key
        // sees the count moved.
        self.flights.ended.fetch_add(1, Ordering::AcqRel);
        // Dropping the last sender wakes followers still without an outcome: the channel closes.
    }
}

/// A caller waiting for the leader of its key.
#[derive(Debug)]
#[must_use = "a Follower does nothing until `wait` is awaited"]
pub struct Follower<V> {
    rx: watch::Receiver<Option<V>>,
}

impl<V: Clone> Follower<V> {
    /// The leader's outcome, or `None` when it went away without one.
    pub async fn wait(mut self) -> Option<V> {
        self.rx
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|outcome| outcome.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_outcome() {
        let flights = SingleFlight::new();
        let Flight::Leader(leader) = flights.join("k") else {
            panic!("first caller leads")
        };
        let Flight::Follower(follower) = flights.join("k") else {
            panic!("second caller follows")
        };
        leader.publish(5_u32);
        drop(leader);
        assert_eq!(follower.wait().await, Some(5));
        assert!(
            matches!(flights.join("k"), Flight::Leader(_)),
            "the flight ended"
        );
    }

    #[test]
    fn ended_counts_each_flight_once_when_its_leader_goes() {
        let flights = SingleFlight::<u32>::new();
        let Flight::Leader(leader) = flights.join("a") else {
            panic!("first caller leads")
        };
        let follower = flights.join("a");
        assert_eq!(flights.ended(), 0, "a running flight has not ended");
        drop(follower);
        assert_eq!(flights.ended(), 0, "a follower leaving ends nothing");
        drop(leader);
        assert_eq!(flights.ended(), 1);
        drop(flights.join("b"));
        assert_eq!(flights.ended(), 2);
    }

    #[tokio::test]
    async fn an_abandoned_flight_releases_its_waiters_and_the_key() {
        let flights = SingleFlight::<u32>::new();
        let Flight::Leader(leader) = flights.join("k") else {
            panic!("first caller leads")
        };
        let Flight::Follower(follower) = flights.join("k") else {
            panic!("second caller follows")
        };
        drop(leader);
        assert_eq!(follower.wait().await, None);
        assert!(matches!(flights.join("k"), Flight::Leader(_)));
    }
}
