//! Property: deleting one user's keys by pattern never touches another user's, on the memory
//! backend and on a real Redis (whose `SCAN MATCH` is the glob matcher that counts).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use cache_test_support as support;

use std::time::Duration;

use cache_core::{Cache, Key, key};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use support::RedisServer;

/// Parts rich in what could break the escaping (glob metacharacters, the separator, `%` and hex
/// digits, set syntax), and any text at all.
fn part() -> impl Strategy<Value = String> {
    prop_oneof![r"[a-c0-9AF%:*?\[\]\\^-]{0,6}", any::<String>()]
}

fn user_key(user: &str, rest: &[String]) -> Key {
    rest.iter()
        .fold(key!("daily_meals", user), |key, part| key.part(part))
}

/// Runs the property on `cache`, emptied after each case.
fn check_isolation(cases: u32, rt: &tokio::runtime::Runtime, cache: &Cache) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (part(), part(), vec(part(), 0..3));
    let result = runner.run(&strategy, |(a, b, rest)| {
        prop_assume!(a != b);
        let (removed, b_left, bare_b_left) = rt.block_on(async {
            let (key_a, key_b) = (user_key(&a, &rest), user_key(&b, &rest));
            let bare_b = key!("daily_meals", &b);
            for key in [&key_a, &key_b, &bare_b] {
                cache
                    .set(key, &1_u8, Duration::from_secs(60))
                    .await
                    .unwrap();
            }
            let pattern = key!("daily_meals", &a).prefix_pattern();
            let removed = cache.delete_pattern(&pattern).await.unwrap();
            let b_left = cache.get::<u8>(&key_b).await.unwrap().is_some();
            let bare_b_left = cache.get::<u8>(&bare_b).await.unwrap().is_some();
            cache.delete_pattern("*").await.unwrap();
            (removed, b_left, bare_b_left)
        });
        prop_assert_eq!(
            removed,
            u64::from(!rest.is_empty()),
            "only user a's key goes"
        );
        prop_assert!(b_left && bare_b_left, "user b's keys survive");
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_users_pattern_deletes_only_that_users_keys_in_memory() {
    check_isolation(256, &runtime(), &Cache::memory());
}

#[test]
fn a_users_pattern_deletes_only_that_users_keys_on_redis() {
    let server = RedisServer::start();
    let rt = runtime();
    let cache = rt.block_on(Cache::connect(&server.url())).unwrap();
    check_isolation(64, &rt, &cache);
}
