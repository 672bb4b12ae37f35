//! Cache URLs: which backend a `CACHE_URL` names, and how to print one without its password.

use crate::error::{Error, Result};

/// The backend a URL selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `memory://`: the in-process backend.
    Memory,
    /// `redis://` or `rediss://`: the URL as the `redis` crate reads it.
    Redis(String),
}

const EXPECTED: &str = "expected memory://, redis://[user:pass@]host:port/db or rediss://...";

/// Reads a cache URL, with an error that shows the (redacted) URL and the accepted forms.
pub(crate) fn parse(url: &str) -> Result<Target> {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(Error::config(format!(
            "CACHE_URL {:?}: missing \"://\"; {EXPECTED}",
            redact(url)
        )));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "memory" if rest.is_empty() || rest == "/" => Ok(Target::Memory),
        "memory" => Err(Error::config(format!(
            "CACHE_URL {:?}: memory:// takes no host or path; {EXPECTED}",
            redact(url)
        ))),
        "redis" | "rediss" if rest.is_empty() => Err(Error::config(format!(
            "CACHE_URL {:?}: missing host; {EXPECTED}",
            redact(url)
        ))),
        "redis" => Ok(Target::Redis(url.to_owned())),
        "rediss" if cfg!(feature = "tls") => Ok(Target::Redis(url.to_owned())),
        "rediss" => Err(Error::config(format!(
            "CACHE_URL {:?}: rediss:// (TLS) needs cache-core's \"tls\" feature",
            redact(url)
        ))),
        other => Err(Error::config(format!(
            "CACHE_URL {:?}: unknown scheme {other:?}; {EXPECTED}",
            redact(url)
        ))),
    }
}

/// The URL with the password part of its userinfo replaced by `***`.
///
/// The userinfo ends at the *last* `@`: a password may contain `/`, `@` or `:`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return match url.rfind('@') {
            Some(_) => "<redacted URL>".to_owned(),
            None => url.to_owned(),
        };
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_each_scheme() {
        assert_eq!(parse("memory://").ok(), Some(Target::Memory));
        assert_eq!(
            parse(" redis://h:6379/0 ").ok(),
            Some(Target::Redis("redis://h:6379/0".to_owned()))
        );
        let tls = parse("rediss://h:6380");
        assert_eq!(tls.is_ok(), cfg!(feature = "tls"));
    }

    #[test]
    fn errors_say_what_is_wrong_and_what_is_expected() {
        let msg = |u| parse(u).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg("redis//x").contains(r#"CACHE_URL "redis//x": missing "://""#));
        assert!(msg("redis//x").contains("expected memory://"));
        assert!(msg("mongodb://x").contains("unknown scheme \"mongodb\""));
        assert!(msg("redis://").contains("missing host"));
    }

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("redis://app:s3cret@h:6379/0"),
            "redis://app:***@h:6379/0"
        );
        assert_eq!(redact("redis://:s3cret@h:6379"), "redis://:***@h:6379");
        assert_eq!(redact("redis://h:6379/0"), "redis://h:6379/0");
        assert_eq!(redact("redis://u:pa/ss@h:6379/0"), "redis://u:***@h:6379/0");
        assert_eq!(redact("redis://u:p@ss:w/rd@h"), "redis://u:***@h");
        assert!(!redact("redis//u:secret@h").contains("secret"));
        assert!(
            !parse("memory://u:secret@h")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains("secret")
        );
        assert!(
            !parse("bogus://u:s3cret@h")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains("s3cret")
        );
    }
}
