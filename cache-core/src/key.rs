//! Keys built from untrusted parts: [`Key`], the [`key!`](crate::key!) macro and [`KeyPart`].
//!
//! A part is written with the characters that mean something to a glob pattern or to the key
//! layout percent-encoded: `%` `:` `*` `?` `[` `]` `\` become `%25` `%3A` `%2A` `%3F` `%5B` `%5D`
//! `%5C`. Two consequences a caller can rely on:
//!
//! - a key built from parts contains no glob metacharacter that came from a part, so it is its own
//!   literal pattern, and [`Key::prefix_pattern`] can never match another user's keys: the
//!   pattern for user `7*` is `daily_meals:7%2A:*`, which does not match `daily_meals:71:...`;
//! - the encoding is injective: parts `["a:b"]` and `["a", "b"]` give different keys.
//!
//! Percent-encoding was chosen over backslash-escaping because a backslash-escaped key would need
//! a second round of escaping whenever it is turned into a pattern.

mod foreign;

use std::fmt::{self, Write as _};

/// A cache key made of escaped parts joined by `:`.
///
/// Build one with [`key!`](crate::key!) or [`Key::new`] + [`Key::part`]; every key-taking
/// operation of [`Cache`](crate::Cache) accepts it, as it accepts `&str` and `String`.
///
/// ```
/// use cache_core::{key, Key};
///
/// let user = "7*";
/// let k = key!("daily_meals", user, "2024-05-01");
/// assert_eq!(k.as_str(), "daily_meals:7%2A:2024-05-01");
/// assert_eq!(k, Key::new("daily_meals").part(user).part("2024-05-01"));
/// // Every key below user 7*'s keys, and no other user's:
/// assert_eq!(key!("daily_meals", user).prefix_pattern(), "daily_meals:7%2A:*");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    /// A key of one part.
    #[must_use]
    pub fn new(first: impl KeyPart) -> Self {
        let mut key = String::with_capacity(32);
        first.write_part(&mut PartWriter { out: &mut key });
        Self(key)
    }

    /// This key with one more part after a `:`.
    #[must_use]
    pub fn part(mut self, part: impl KeyPart) -> Self {
        self.push(part);
        self
    }

    /// Appends a part after a `:`.
    pub fn push(&mut self, part: impl KeyPart) {
        self.0.push(':');
        self.append(part);
    }

    /// A key beginning with text the caller vouches for (no glob metacharacter from input).
    pub(crate) fn raw(text: &str) -> Self {
        // Room for a few parts, so that pushing them does not reallocate.
        let mut key = String::with_capacity(text.len() + 32);
        key.push_str(text);
        Self(key)
    }

    /// Appends an escaped part with no separator.
    pub(crate) fn append(&mut self, part: impl KeyPart) {
        part.write_part(&mut PartWriter { out: &mut self.0 });
    }

    /// Appends text as is.
    pub(crate) fn append_raw(&mut self, text: &str) {
        self.0.push_str(text);
    }

    /// The key as text, as the cache stores it (below the cache's namespace).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A glob pattern matching every key that starts with this key's parts and has more:
    /// `key!("daily_meals", 7).prefix_pattern()` is `daily_meals:7:*`. Pass it to
    /// [`Cache::delete_pattern`](crate::Cache::delete_pattern).
    #[must_use]
    pub fn prefix_pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.0.len() + 2);
        pattern.push_str(&self.0);
        pattern.push_str(":*");
        pattern
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Key").field(&self.0).finish()
    }
}

impl From<Key> for String {
    fn from(key: Key) -> Self {
        key.0
    }
}

/// Builds a [`Key`] from parts, each escaped: `key!("meals", user_id, date)`.
///
/// Each argument is anything that implements [`KeyPart`]; it is taken by reference.
///
/// ```
/// use cache_core::key;
///
/// let user_id = 42_i64;
/// assert_eq!(key!("user_stats", user_id, 7_u32).as_str(), "user_stats:42:7");
/// assert_eq!(key!("search", "a:b").as_str(), "search:a%3Ab");
/// ```
#[macro_export]
macro_rules! key {
    ($first:expr $(, $rest:expr)* $(,)?) => {
        $crate::Key::new(&$first)$(.part(&$rest))*
    };
}

/// Writes one part of a key, escaping as it goes. Handed to [`KeyPart::write_part`].
#[derive(Debug)]
pub struct PartWriter<'a> {
    out: &'a mut String,
}

impl PartWriter<'_> {
    /// Appends text to the part, percent-encoding the reserved characters.
    pub fn push_str(&mut self, text: &str) {
        escape_into(self.out, text);
    }

    /// Appends a value's `Display` form, escaped.
    pub fn push_display(&mut self, value: &dyn fmt::Display) {
        // Writing to a String cannot fail.
        let _ = write!(self, "{value}");
    }

    /// Writes text the escaper would never produce, to mark structure (`None`, tuple separators).
    fn push_marker(&mut self, marker: &str) {
        self.out.push_str(marker);
    }
}

impl fmt::Write for PartWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_into(self.out, s);
        Ok(())
    }
}

/// A value that can be one part of a [`Key`].
///
/// Implemented for strings, integers, `bool`, `char`, references, `Option` and tuples (whose
/// elements become consecutive parts). Implement it for your own id types by writing a stable
/// textual form; escaping is done by the writer.
///
/// ```
/// use cache_core::{key, KeyPart, PartWriter};
///
/// struct UserId(u64);
///
/// impl KeyPart for UserId {
///     fn write_part(&self, out: &mut PartWriter<'_>) {
///         out.push_display(&self.0);
///     }
/// }
///
/// assert_eq!(key!("profile", UserId(9)).as_str(), "profile:9");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key",
    label = "this becomes part of the cache key",
    note = "implement `cache_core::KeyPart` for it, leave the argument out of the key with `skip(..)`, or choose the key with `key = \"..\"`"
)]
pub trait KeyPart {
    /// Writes this value's textual form into the key.
    fn write_part(&self, out: &mut PartWriter<'_>);
}

impl<T: KeyPart + ?Sized> KeyPart for &T {
    fn write_part(&self, out: &mut PartWriter<'_>) {
        (**self).write_part(out);
    }
}

impl KeyPart for str {
    fn write_part(&self, out: &mut PartWriter<'_>) {
        out.push_str(self);
    }
}

impl KeyPart for String {
    fn write_part(&self, out: &mut PartWriter<'_>) {
        out.push_str(self);
    }
}

impl KeyPart for Key {
    /// A key used as a part keeps its parts: it is already escaped.
    fn write_part(&self, out: &mut PartWriter<'_>) {
        out.push_marker(&self.0);
    }
}

macro_rules! display_parts {
    ($($ty:ty),* $(,)?) => {$(
        impl KeyPart for $ty {
            fn write_part(&self, out: &mut PartWriter<'_>) {
                out.push_display(self);
            }
        }
    )*};
}

display_parts!(
    i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, bool, char
);

impl<T: KeyPart> KeyPart for Option<T> {
    /// `None` is written as `%none`, which no escaped text can produce (an escaped `%` is always
    /// followed by two hex digits), so `None` and `Some("none")` never share a key.
    fn write_part(&self, out: &mut PartWriter<'_>) {
        match self {
            Some(value) => value.write_part(out),
            None => out.push_marker("%none"),
        }
    }
}

macro_rules! tuple_parts {
    ($first:ident $(, $rest:ident)*) => {
        impl<$first: KeyPart, $($rest: KeyPart),*> KeyPart for ($first, $($rest,)*) {
            #[allow(non_snake_case)]
            fn write_part(&self, out: &mut PartWriter<'_>) {
                let ($first, $($rest,)*) = self;
                $first.write_part(out);
                $( out.push_marker(":"); $rest.write_part(out); )*
            }
        }
    };
}

tuple_parts!(A);
tuple_parts!(A, B);
tuple_parts!(A, B, C);
tuple_parts!(A, B, C, D);
tuple_parts!(A, B, C, D, E);
tuple_parts!(A, B, C, D, E, F);

/// Appends `text` to `out` with the reserved characters percent-encoded.
fn escape_into(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(at) = rest.find(is_reserved) {
        out.push_str(&rest[..at]);
        let c = rest.as_bytes()[at];
        out.push('%');
        out.push(char::from(HEX[usize::from(c >> 4)]));
        out.push(char::from(HEX[usize::from(c & 0xf)]));
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn is_reserved(c: char) -> bool {
    matches!(c, '%' | ':' | '*' | '?' | '[' | ']' | '\\')
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_every_reserved_character() {
        assert_eq!(
            key!(r"a%b:c*d?e[f]g\h").as_str(),
            "a%25b%3Ac%2Ad%3Fe%5Bf%5Dg%5Ch"
        );
        assert_eq!(key!("plain-text_ü").as_str(), "plain-text_ü");
    }

    #[test]
    fn keys_from_different_parts_differ() {
        assert_ne!(key!("a:b"), key!("a", "b"));
        assert_ne!(key!("x", None::<&str>), key!("x", Some("%none")));
        assert_ne!(key!("x", None::<&str>), key!("x", Some("none")));
        assert_eq!(key!("x", (1, "y")), key!("x", 1, "y"));
    }

    #[test]
    fn no_part_can_inject_a_glob_metacharacter() {
        for hostile in ["7*", "7]", "7?", "7[", r"7\", "*", "[a-z]"] {
            let key = key!("daily_meals", hostile);
            assert!(
                !key.as_str().contains(['*', '?', '[', ']', '\\']),
                "{key:?}"
            );
        }
    }

    #[test]
    fn integers_booleans_and_chars() {
        assert_eq!(key!(-5_i32, 7_u64, true, 'c').as_str(), "-5:7:true:c");
        assert_eq!(key!(u128::MAX).as_str(), u128::MAX.to_string());
    }

    /// The escaping's promises, checked with Redis's glob semantics (`pattern::matches` follows
    /// Redis's `stringmatchlen`; `tests/key_isolation.rs` checks the same on a real server).
    mod properties {
        use proptest::collection::vec;
        use proptest::prelude::*;

        use crate::Key;
        use crate::pattern::{matches, validate};

        /// Parts rich in what could break the escaping (glob metacharacters, the separator, `%`
        /// and hex digits, set syntax), and any text at all.
        fn part() -> impl Strategy<Value = String> {
            prop_oneof![r"[a-c0-9AF%:*?\[\]\\^-]{0,8}", any::<String>()]
        }

        fn user_key(user: &str, rest: &[String]) -> Key {
            rest.iter()
                .fold(key!("daily_meals", user), |key, part| key.part(part))
        }

        fn glob(pattern: &str, key: &Key) -> bool {
            matches(pattern.as_bytes(), key.as_str().as_bytes())
        }

        proptest! {
            #[test]
            fn no_users_key_matches_a_pattern_built_for_another_user(
                a in part(),
                b in part(),
                rest in vec(part(), 0..3),
            ) {
                prop_assume!(a != b);
                let (key_a, key_b) = (user_key(&a, &rest), user_key(&b, &rest));
                let prefix_a = key!("daily_meals", &a).prefix_pattern();
                prop_assert!(validate(&prefix_a).is_ok());
                prop_assert!(!glob(&prefix_a, &key_b), "{prefix_a} matches {key_b:?}");
                prop_assert!(!glob(key_a.as_str(), &key_b), "{key_a:?} matches {key_b:?}");
                prop_assert!(!glob(key!("daily_meals", &a).as_str(), &key!("daily_meals", &b)));
                // ... and each pattern does match what it is for.
                prop_assert!(glob(key_a.as_str(), &key_a), "a key is its own literal pattern");
                prop_assert_eq!(glob(&prefix_a, &key_a), !rest.is_empty());
            }

            #[test]
            fn an_escaped_part_has_no_glob_metacharacter_and_no_separator(text in any::<String>()) {
                let key = key!(text);
                prop_assert!(!key.as_str().contains(['*', '?', '[', ']', '\\', ':']), "{key:?}");
                prop_assert!(validate(key.as_str()).is_ok());
            }

            #[test]
            fn different_parts_give_different_keys(
                a in vec(part(), 1..4),
                b in vec(part(), 1..4),
            ) {
                prop_assume!(a != b);
                let key = |parts: &[String]| {
                    parts[1..].iter().fold(Key::new(&parts[0]), |key, part| key.part(part))
                };
                prop_assert_ne!(key(&a), key(&b));
            }
        }
    }
}
