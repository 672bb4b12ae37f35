//! Cache URLs: which backend a `CACHE_URL` names, and how to print one without its password.

use crate::error::{Error, Result};

/// The backend a URL selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `memory://`: the in-process backend.
    Memory,
    /// `redis://` or `rediss://`: the URL as the `redis` crate reads it.
    Redis(String),
    /// `redis+cluster://` or `rediss+cluster://`: one `redis://` (or `rediss://`) URL per seed
    /// node, each with the credentials of the cluster URL.
    Cluster(Vec<String>),
}

const EXPECTED: &str = "expected memory://, redis://[user:pass@]host:port/db, rediss://... \
                        or redis+cluster://[user:pass@]host:port[,host:port...]";

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
        "redis+cluster" => cluster(url, rest, "redis"),
        "rediss+cluster" if cfg!(feature = "tls") => cluster(url, rest, "rediss"),
        "rediss+cluster" => Err(Error::config(format!(
            "CACHE_URL {:?}: rediss+cluster:// (TLS) needs cache-core's \"tls\" feature",
            redact(url)
        ))),
        other => Err(Error::config(format!(
            "CACHE_URL {:?}: unknown scheme {other:?}; {EXPECTED}",
            redact(url)
        ))),
    }
}

/// Reads the part after `redis+cluster://`: `[user:pass@]host:port[,host:port...][/[0]]`, into
/// one `{scheme}://[user:pass@]host:port` URL per seed node.
fn cluster(url: &str, rest: &str, scheme: &str) -> Result<Target> {
    const FORM: &str = "expected redis+cluster://[user:pass@]host:port[,host:port...]";
    let fail = |what: String| {
        Err(Error::config(format!(
            "CACHE_URL {:?}: {what}; {FORM}",
            redact(url)
        )))
    };
    // The userinfo ends at the last `@`, as in `redact`: a password may contain `@`, `/`, `,`.
    let (userinfo, hosts) = match rest.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, rest),
    };
    let (hosts, database) = hosts.split_once('/').unwrap_or((hosts, ""));
    if !matches!(database, "" | "0") {
        return fail(format!(
            "a Redis Cluster has only database 0, not {database:?}; remove the /{database}"
        ));
    }
    if hosts.trim().is_empty() {
        return fail("missing host".to_owned());
    }
    let mut nodes = Vec::new();
    for node in hosts.split(',').map(str::trim) {
        let Some((host, port)) = node.rsplit_once(':') else {
            return fail(format!("{node:?} has no port"));
        };
        if host.is_empty() {
            return fail(format!("{node:?} has no host"));
        }
        if !port.parse::<u16>().is_ok_and(|port| port > 0) {
            return fail(format!("{node:?} has an invalid port {port:?}"));
        }
        nodes.push(match userinfo {
            Some(userinfo) => format!("{scheme}://{userinfo}@{node}"),
            None => format!("{scheme}://{node}"),
        });
    }
    Ok(Target::Cluster(nodes))
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
    fn cluster_urls_list_their_seed_nodes() {
        let nodes = |u| match parse(u) {
            Ok(Target::Cluster(nodes)) => nodes,
            other => panic!("{u}: {other:?}"),
        };
        assert_eq!(nodes("redis+cluster://h1:7000"), ["redis://h1:7000"]);
        assert_eq!(
            nodes("redis+cluster://h1:7000, h2:7001,[::1]:7002/"),
            ["redis://h1:7000", "redis://h2:7001", "redis://[::1]:7002"]
        );
        assert_eq!(
            nodes("REDIS+CLUSTER://app:p@ss,w/rd@h1:7000,h2:7001/0"),
            [
                "redis://app:p@ss,w/rd@h1:7000",
                "redis://app:p@ss,w/rd@h2:7001"
            ]
        );
        let tls = parse("rediss+cluster://h1:7000");
        assert_eq!(
            tls.as_ref().ok(),
            cfg!(feature = "tls")
                .then(|| Target::Cluster(vec!["rediss://h1:7000".to_owned()]))
                .as_ref()
        );
        if !cfg!(feature = "tls") {
            assert!(
                tls.err()
                    .map(|e| e.to_string())
                    .unwrap_or_default()
                    .contains("\"tls\" feature")
            );
        }
    }

    #[test]
    fn cluster_url_errors_say_what_is_wrong() {
        let msg = |u| parse(u).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg("redis+cluster://").contains("missing host"));
        assert!(msg("redis+cluster:///0").contains("missing host"));
        assert!(msg("redis+cluster://u:pw@").contains("missing host"));
        assert!(msg("redis+cluster://h1:7000,,h2:7001").contains("\"\" has no port"));
        assert!(msg("redis+cluster://h1").contains("\"h1\" has no port"));
        assert!(msg("redis+cluster://:7000").contains("has no host"));
        assert!(msg("redis+cluster://h1:70000").contains("invalid port \"70000\""));
        assert!(msg("redis+cluster://h1:0").contains("invalid port \"0\""));
        assert!(msg("redis+cluster://h1:x").contains("invalid port \"x\""));
        assert!(msg("redis+cluster://h1:7000/3").contains("only database 0, not \"3\""));
        assert!(msg("redis+cluster://h1:7000/3").contains("expected redis+cluster://"));
        // A password never shows, whatever else is wrong.
        for url in [
            "redis+cluster://u:s3cret@h1:x",
            "redis+cluster://u:s3cret@h1:7000/2",
            "redis+cluster://u:s3cret@",
            "redis+cluster://u:s3cr@t,x@h1",
        ] {
            assert!(!msg(url).contains("s3cr"), "{url}: {}", msg(url));
            assert!(msg(url).contains("u:***@"), "{url}: {}", msg(url));
        }
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
        assert_eq!(
            redact("redis+cluster://u:p@s,s@h1:7000,h2:7001"),
            "redis+cluster://u:***@h1:7000,h2:7001"
        );
        assert_eq!(
            redact("redis+cluster://h1:7000,h2:7001"),
            "redis+cluster://h1:7000,h2:7001"
        );
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
