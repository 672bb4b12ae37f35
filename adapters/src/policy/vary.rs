//! Vary (RFC 9111 §4.1): which request headers a stored response depends on, and whether a new
//! request matches them.

use http::HeaderMap;
use http::header::VARY;

use super::cache_control::split_list;

/// What `Vary` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Vary {
    /// The response depends on these request headers (lowercase names, in order, no repeats).
    Headers(Vec<String>),
    /// `Vary: *`: it depends on something outside the request headers; never reusable.
    Any,
}

impl Vary {
    /// The `Vary` field lines of a response, combined.
    #[must_use]
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let mut names = Vec::new();
        for value in headers.get_all(VARY) {
            let Ok(text) = value.to_str() else { continue };
            for name in split_list(text) {
                if name == "*" {
                    return Self::Any;
                }
                let name = name.to_ascii_lowercase();
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        Self::Headers(names)
    }
}

/// A request header's value as a stored response records it: the field lines joined by `, `,
/// each element trimmed, so that differences in whitespace do not split variants. `None` when
/// the request did not send it.
#[must_use]
pub(crate) fn normalized(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let mut out = String::new();
    for value in values {
        let text = String::from_utf8_lossy(value.as_bytes());
        for element in split_list(&text) {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(element);
        }
    }
    Some(out)
}

/// The request's values of the headers `names` (as [`normalized`]).
#[must_use]
pub(crate) fn selecting_values(
    headers: &HeaderMap,
    names: &[String],
) -> Vec<(String, Option<String>)> {
    names
        .iter()
        .map(|name| (name.clone(), normalized(headers, name)))
        .collect()
}

/// True when a request carries the values a stored variant was selected by.
#[must_use]
pub(crate) fn matches(stored: &[(String, Option<String>)], request: &HeaderMap) -> bool {
    stored
        .iter()
        .all(|(name, value)| normalized(request, name) == *value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn vary_names_are_combined_lowercased_and_deduplicated() {
        let mut h = HeaderMap::new();
        h.append(VARY, HeaderValue::from_static("Accept-Encoding, accept"));
        h.append(VARY, HeaderValue::from_static("ACCEPT-encoding"));
        assert_eq!(
            Vary::of(&h),
            Vary::Headers(vec!["accept-encoding".to_owned(), "accept".to_owned()])
        );
        h.append(VARY, HeaderValue::from_static("*"));
        assert_eq!(Vary::of(&h), Vary::Any);
    }

    #[test]
    fn whitespace_does_not_split_variants_but_values_do() {
        let mut a = HeaderMap::new();
        a.insert("accept-language", HeaderValue::from_static("en,  fr"));
        let mut b = HeaderMap::new();
        b.insert("accept-language", HeaderValue::from_static("en, fr"));
        let stored = selecting_values(&a, &["accept-language".to_owned()]);
        assert!(matches(&stored, &b));
        b.insert("accept-language", HeaderValue::from_static("de"));
        assert!(!matches(&stored, &b));
        assert!(
            !matches(&stored, &HeaderMap::new()),
            "absent differs from present"
        );
    }
}
