//! Keys built from untrusted parts: whatever the parts, a key carries no glob metacharacter from
//! them, is its own literal pattern, and matches no pattern built for another user; and the glob
//! matcher terminates without panicking on any pattern.
//!
//! Input: lines; the first is user a, the second user b, the rest (up to 4) further parts.
#![no_main]

use cache_core::__fuzz::{glob_is_valid, glob_matches};
use cache_core::{Key, key};
use libfuzzer_sys::fuzz_target;

fn user_key(user: &str, rest: &[&str]) -> Key {
    rest.iter()
        .fold(key!("daily_meals", user), |key, part| key.part(part))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let a = lines.next().unwrap_or_default();
    let b = lines.next().unwrap_or_default();
    let rest: Vec<&str> = lines.take(4).collect();

    // The matcher on raw input: any pattern, any text.
    let _ = glob_is_valid(a);
    let _ = glob_matches(a, b);

    let (key_a, key_b) = (user_key(a, &rest), user_key(b, &rest));
    for key in [&key_a, &key_b] {
        let s = key.as_str();
        assert!(!s.contains(['*', '?', '[', ']', '\\']), "{key:?}");
        // Separators only: one per part after the first.
        assert_eq!(s.matches(':').count(), 1 + rest.len(), "{key:?}");
        assert!(glob_is_valid(s));
        assert!(glob_matches(s, s), "{key:?} is its own literal pattern");
    }
    let prefix_a = key!("daily_meals", a).prefix_pattern();
    assert!(glob_is_valid(&prefix_a));
    assert_eq!(glob_matches(&prefix_a, key_a.as_str()), !rest.is_empty());
    if a != b {
        assert_ne!(key_a, key_b, "the encoding is injective");
        assert!(
            !glob_matches(&prefix_a, key_b.as_str()),
            "{prefix_a} matches {key_b:?}"
        );
        assert!(!glob_matches(key_a.as_str(), key_b.as_str()));
    }
});
