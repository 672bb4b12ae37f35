//! Cache-Control directives (RFC 9111 §5.2), parsed leniently and completely.
//!
//! Field lines are combined as one comma-separated list (RFC 9110 §5.3); each element is
//! `name[=value]` with a case-insensitive name and a token or quoted-string value. Elements that
//! do not parse are ignored. A directive given twice keeps its first occurrence (§4.2.1 allows
//! "the first occurrence" or "stale"; the first is what most caches do). A `delta-seconds` value
//! that is not a non-negative integer is [`Seconds::Invalid`], which makes the response stale
//! (§4.2.1 encourages that), and one larger than 2^31 is 2^31 (§1.2.2).

use std::borrow::Cow;

use http::HeaderMap;
use http::header::{CACHE_CONTROL, PRAGMA};

/// The largest delta-seconds a cache needs to represent (RFC 9111 §1.2.2).
pub(crate) const DELTA_SECONDS_MAX: u64 = 1 << 31;

/// A delta-seconds argument as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Seconds {
    /// The directive is absent.
    #[default]
    Absent,
    /// Present with a usable number of seconds.
    Valid(u64),
    /// Present with a value that is not a non-negative integer.
    Invalid,
}

impl Seconds {
    /// The seconds, if present and valid.
    #[must_use]
    pub(crate) fn get(self) -> Option<u64> {
        match self {
            Self::Valid(s) => Some(s),
            _ => None,
        }
    }

    /// True when the directive was given at all.
    #[must_use]
    pub(crate) fn is_present(self) -> bool {
        self != Self::Absent
    }
}

/// The directives of one message's Cache-Control field (and, for requests, `Pragma: no-cache`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)]
pub(crate) struct CacheControl {
    /// `max-age`
    pub(crate) max_age: Seconds,
    /// `s-maxage` (responses; shared caches only)
    pub(crate) s_maxage: Seconds,
    /// `max-stale` (requests): `Some(None)` accepts any staleness.
    pub(crate) max_stale: Option<Option<u64>>,
    /// `min-fresh` (requests)
    pub(crate) min_fresh: Seconds,
    /// `stale-while-revalidate` (RFC 5861)
    pub(crate) stale_while_revalidate: Seconds,
    /// `stale-if-error` (RFC 5861)
    pub(crate) stale_if_error: Seconds,
    /// `no-cache` (without field names, or with them: a shared cache treats both alike)
    pub(crate) no_cache: bool,
    /// `no-store`
    pub(crate) no_store: bool,
    /// `private` (with or without field names)
    pub(crate) private: bool,
    /// `public`
    pub(crate) public: bool,
    /// `must-revalidate`
    pub(crate) must_revalidate: bool,
    /// `proxy-revalidate`
    pub(crate) proxy_revalidate: bool,
    /// `only-if-cached` (requests)
    pub(crate) only_if_cached: bool,
    /// `must-understand`
    pub(crate) must_understand: bool,
    /// `no-transform`
    pub(crate) no_transform: bool,
    /// `immutable` (RFC 8246)
    pub(crate) immutable: bool,
    /// These directives came from `CDN-Cache-Control` (RFC 9213), which replaces
    /// Cache-Control and `Expires` for this cache.
    pub(crate) targeted: bool,
}

impl CacheControl {
    /// The directives of every `Cache-Control` line in `headers`.
    #[must_use]
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        let mut cc = Self::default();
        let mut seen: Vec<Cow<'_, str>> = Vec::new();
        for value in headers.get_all(CACHE_CONTROL) {
            let Ok(text) = std::str::from_utf8(value.as_bytes()) else {
                continue;
            };
            for (name, arg) in directives(text) {
                if seen.contains(&name) {
                    continue;
                }
                cc.apply(&name, arg.as_deref());
                seen.push(name);
            }
        }
        cc
    }

    /// A request's directives: as [`parse`](Self::parse), and `Pragma: no-cache` counts as
    /// `no-cache` when there is no Cache-Control field (RFC 9111 §5.4).
    #[must_use]
    pub(crate) fn parse_request(headers: &HeaderMap) -> Self {
        if headers.contains_key(CACHE_CONTROL) {
            return Self::parse(headers);
        }
        // Most requests carry neither field: one lookup each, nothing to parse.
        let no_cache = headers.get_all(PRAGMA).iter().any(|v| {
            std::str::from_utf8(v.as_bytes())
                .is_ok_and(|t| directives(t).any(|(name, _)| name == "no-cache"))
        });
        Self {
            no_cache,
            ..Self::default()
        }
    }

    /// A response's directives for a shared cache: those of a valid `CDN-Cache-Control`
    /// (RFC 9213), which then replace Cache-Control and `Expires` entirely; otherwise those of
    /// Cache-Control. A `CDN-Cache-Control` that is not a valid structured-field dictionary
    /// (RFC 8941), or whose directives have the wrong types, is ignored.
    #[must_use]
    pub(crate) fn response(headers: &HeaderMap) -> Self {
        targeted(headers).unwrap_or_else(|| Self::parse(headers))
    }

    fn apply(&mut self, name: &str, arg: Option<&str>) {
        match name {
            "max-age" => self.max_age = seconds(arg),
            "s-maxage" => self.s_maxage = seconds(arg),
            "max-stale" => {
                self.max_stale = Some(match arg {
                    None => None,
                    Some(_) => seconds(arg).get().or(Some(0)),
                });
            }
            "min-fresh" => self.min_fresh = seconds(arg),
            "stale-while-revalidate" => self.stale_while_revalidate = seconds(arg),
            "stale-if-error" => self.stale_if_error = seconds(arg),
            "no-cache" => self.no_cache = true,
            "no-store" => self.no_store = true,
            "private" => self.private = true,
            "public" => self.public = true,
            "must-revalidate" => self.must_revalidate = true,
            "proxy-revalidate" => self.proxy_revalidate = true,
            "only-if-cached" => self.only_if_cached = true,
            "must-understand" => self.must_understand = true,
            "no-transform" => self.no_transform = true,
            "immutable" => self.immutable = true,
            _ => {}
        }
    }
}

/// The directives of `CDN-Cache-Control`, when it is present and valid.
fn targeted(headers: &HeaderMap) -> Option<CacheControl> {
    use sfv::{BareItem, ListEntry};
    let mut lines = Vec::new();
    for value in headers.get_all("cdn-cache-control") {
        lines.push(value.to_str().ok()?);
    }
    if lines.is_empty() {
        return None;
    }
    let dictionary: sfv::Dictionary = sfv::Parser::new(&lines.join(", ")).parse().ok()?;
    let mut cc = CacheControl {
        targeted: true,
        ..CacheControl::default()
    };
    for (key, entry) in &dictionary {
        let item = match entry {
            ListEntry::Item(item) => Some(&item.bare_item),
            ListEntry::InnerList(_) => None,
        };
        let flag = || matches!(item, Some(BareItem::Boolean(true)) | None);
        match key.as_str() {
            name @ ("max-age" | "s-maxage" | "stale-while-revalidate" | "stale-if-error") => {
                let Some(BareItem::Integer(value)) = item else {
                    return None;
                };
                let secs = u64::try_from(i64::from(*value))
                    .ok()?
                    .min(DELTA_SECONDS_MAX);
                match name {
                    "max-age" => cc.max_age = Seconds::Valid(secs),
                    "s-maxage" => cc.s_maxage = Seconds::Valid(secs),
                    "stale-while-revalidate" => cc.stale_while_revalidate = Seconds::Valid(secs),
                    _ => cc.stale_if_error = Seconds::Valid(secs),
                }
            }
            "no-store" => cc.no_store = flag(),
            "no-cache" => cc.no_cache = flag(),
            "private" => cc.private = flag(),
            "public" => cc.public = flag(),
            "must-revalidate" => cc.must_revalidate = flag(),
            "proxy-revalidate" => cc.proxy_revalidate = flag(),
            "must-understand" => cc.must_understand = flag(),
            "immutable" => cc.immutable = flag(),
            _ => {}
        }
    }
    Some(cc)
}

fn seconds(arg: Option<&str>) -> Seconds {
    match arg {
        Some(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            Seconds::Valid(
                text.parse::<u64>()
                    .map_or(DELTA_SECONDS_MAX, |s| s.min(DELTA_SECONDS_MAX)),
            )
        }
        _ => Seconds::Invalid,
    }
}

/// The elements of a comma-separated list of `name[=value]`, names lowercased, quoted values
/// unquoted. Commas inside quoted strings do not split. Borrowed from `text` unless lowercasing
/// or unquoting changed them: a stored response's directives are parsed on every Redis hit.
pub(crate) fn directives(
    text: &str,
) -> impl Iterator<Item = (Cow<'_, str>, Option<Cow<'_, str>>)> + '_ {
    split_list(text).filter_map(|element| {
        let (name, arg) = match element.split_once('=') {
            Some((name, arg)) => (name.trim(), Some(unquote(arg.trim()))),
            None => (element, None),
        };
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return None;
        }
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(name.to_ascii_lowercase())
        } else {
            Cow::Borrowed(name)
        };
        Some((name, arg))
    })
}

/// The non-empty, trimmed elements of a comma-separated list, quotes respected.
pub(crate) fn split_list(text: &str) -> impl Iterator<Item = &str> + '_ {
    let mut rest = text;
    std::iter::from_fn(move || {
        loop {
            if rest.is_empty() {
                return None;
            }
            let mut in_quotes = false;
            let mut escaped = false;
            let mut end = rest.len();
            for (i, c) in rest.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' if in_quotes => escaped = true,
                    '"' => in_quotes = !in_quotes,
                    ',' if !in_quotes => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            let element = rest[..end].trim();
            rest = if end < rest.len() {
                &rest[end + 1..]
            } else {
                ""
            };
            if !element.is_empty() {
                return Some(element);
            }
        }
    })
}

fn unquote(arg: &str) -> Cow<'_, str> {
    let Some(inner) = arg.strip_prefix('"').and_then(|a| a.strip_suffix('"')) else {
        return Cow::Borrowed(arg);
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// RFC 9110 `tchar`.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn cc(lines: &[&str]) -> CacheControl {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(
                CACHE_CONTROL,
                HeaderValue::from_str(line).unwrap_or(HeaderValue::from_static("")),
            );
        }
        CacheControl::parse(&headers)
    }

    #[test]
    fn parses_directives_case_insensitively_across_lines() {
        let c = cc(&["Public, MAX-AGE=60", "s-maxage=5"]);
        assert!(c.public);
        assert_eq!(c.max_age, Seconds::Valid(60));
        assert_eq!(c.s_maxage, Seconds::Valid(5));
    }

    #[test]
    fn invalid_and_huge_delta_seconds() {
        assert_eq!(cc(&["max-age=-1"]).max_age, Seconds::Invalid);
        assert_eq!(cc(&["max-age=3.5"]).max_age, Seconds::Invalid);
        assert_eq!(cc(&["max-age="]).max_age, Seconds::Invalid);
        assert_eq!(cc(&["max-age"]).max_age, Seconds::Invalid);
        assert_eq!(
            cc(&["max-age=99999999999999999999"]).max_age,
            Seconds::Valid(DELTA_SECONDS_MAX)
        );
        assert_eq!(cc(&["max-age=\"60\""]).max_age, Seconds::Valid(60));
    }

    #[test]
    fn first_occurrence_wins_and_quotes_protect_commas() {
        assert_eq!(cc(&["max-age=10, max-age=20"]).max_age, Seconds::Valid(10));
        let c = cc(&["private=\"a, b\", max-age=7"]);
        assert!(c.private);
        assert_eq!(c.max_age, Seconds::Valid(7));
    }

    #[test]
    fn pragma_no_cache_counts_only_without_cache_control() {
        let mut h = HeaderMap::new();
        h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
        assert!(CacheControl::parse_request(&h).no_cache);
        h.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=5"));
        assert!(!CacheControl::parse_request(&h).no_cache);
    }

    fn response(pairs: &[(&'static str, &'static str)]) -> CacheControl {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        CacheControl::response(&headers)
    }

    #[test]
    fn a_valid_cdn_cache_control_replaces_cache_control() {
        let c = response(&[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=10000"),
        ]);
        assert!(c.targeted && !c.no_store);
        assert_eq!(c.max_age, Seconds::Valid(10000));
        let c = response(&[
            ("cache-control", "max-age=60"),
            ("cdn-cache-control", "private"),
        ]);
        assert!(c.private && c.max_age == Seconds::Absent);
    }

    #[test]
    fn an_invalid_cdn_cache_control_is_ignored() {
        assert!(
            response(&[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=10000, &&&&&")
            ])
            .no_store
        );
        assert!(
            response(&[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=\"10000\"")
            ])
            .no_store
        );
        assert!(!response(&[("cache-control", "max-age=5")]).targeted);
    }

    #[test]
    fn max_stale_with_and_without_a_value() {
        assert_eq!(cc(&["max-stale"]).max_stale, Some(None));
        assert_eq!(cc(&["max-stale=30"]).max_stale, Some(Some(30)));
        assert_eq!(cc(&[""]).max_stale, None);
    }
}
