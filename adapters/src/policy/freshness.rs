//! How old a stored response is and how long it stays fresh (RFC 9111 §4.2), and whether it may
//! answer a request as it is (§4.2, §4.2.4, RFC 5861).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{AGE, DATE, EXPIRES, LAST_MODIFIED};
use http::{HeaderMap, StatusCode};

use super::cache_control::{CacheControl, DELTA_SECONDS_MAX, Seconds};

/// When a response was requested and received, in seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Timing {
    /// When the request that produced it was sent.
    pub(crate) request_time: u64,
    /// When the response arrived.
    pub(crate) response_time: u64,
}

/// Seconds since the Unix epoch.
#[must_use]
pub(crate) fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// An HTTP-date header as seconds since the Unix epoch; `None` when absent or unparseable.
#[must_use]
pub(crate) fn http_date(headers: &HeaderMap, name: http::HeaderName) -> Option<u64> {
    let value = headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(value.trim())
        .ok()
        .map(unix_seconds)
}

/// The `Age` header's value, when it is a valid delta-seconds (the first, if several).
fn age_value(headers: &HeaderMap) -> u64 {
    headers
        .get(AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let v = v.split(',').next().unwrap_or("").trim();
            (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .then(|| v.parse::<u64>().unwrap_or(DELTA_SECONDS_MAX))
        })
        .unwrap_or(0)
}

/// The current age of a stored response (RFC 9111 §4.2.3), in seconds.
#[cfg(test)]
pub(crate) fn current_age(headers: &HeaderMap, timing: Timing, now: u64) -> u64 {
    age_at(initial_age(headers, timing), timing, now)
}

/// The age of a response when it was received, `corrected_initial_age` in RFC 9111 §4.2.3:
/// the part of [`current_age`] that does not change while it is stored.
#[must_use]
pub(crate) fn initial_age(headers: &HeaderMap, timing: Timing) -> u64 {
    let date = http_date(headers, DATE).unwrap_or(timing.response_time);
    let apparent_age = timing.response_time.saturating_sub(date);
    let response_delay = timing.response_time.saturating_sub(timing.request_time);
    let corrected_age_value = age_value(headers).saturating_add(response_delay);
    apparent_age.max(corrected_age_value)
}

/// [`current_age`] from a response's [`initial_age`]: that plus the time it has been stored.
#[must_use]
pub(crate) fn age_at(initial_age: u64, timing: Timing, now: u64) -> u64 {
    let resident_time = now.saturating_sub(timing.response_time);
    initial_age
        .saturating_add(resident_time)
        .min(DELTA_SECONDS_MAX)
}

/// How a cache computes freshness where the response says nothing explicit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Heuristics {
    /// The application's TTL for responses without explicit freshness.
    pub(crate) default_ttl: Option<Duration>,
    /// Heuristic freshness (RFC 9111 §4.2.2): 10% of the time since `Last-Modified`, at most
    /// a day, for heuristically cacheable statuses. Off by default.
    pub(crate) last_modified_fraction: bool,
}

/// The statuses cacheable by default (RFC 9110 §15.1).
#[must_use]
pub(crate) fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// True when the response states its freshness: `s-maxage`, `max-age` or `Expires` (only the
/// first two when `CDN-Cache-Control` governs).
#[must_use]
pub(crate) fn has_explicit_freshness(headers: &HeaderMap, cc: &CacheControl) -> bool {
    cc.s_maxage.is_present()
        || cc.max_age.is_present()
        || (!cc.targeted && headers.contains_key(EXPIRES))
}

/// The freshness lifetime of a response for a shared cache (RFC 9111 §4.2.1), in seconds.
#[must_use]
pub(crate) fn freshness_lifetime(
    status: StatusCode,
    headers: &HeaderMap,
    cc: &CacheControl,
    timing: Timing,
    heuristics: Heuristics,
) -> u64 {
    match cc.s_maxage {
        Seconds::Valid(s) => return s,
        Seconds::Invalid => return 0,
        Seconds::Absent => {}
    }
    match cc.max_age {
        Seconds::Valid(s) => return s,
        Seconds::Invalid => return 0,
        Seconds::Absent => {}
    }
    if cc.targeted {
        // CDN-Cache-Control without max-age: no explicit freshness, and Expires does not count.
        return 0;
    }
    if headers.contains_key(EXPIRES) {
        // An Expires that does not parse (e.g. "0"), or that is given twice, means already
        // expired (§5.3).
        if headers.get_all(EXPIRES).iter().nth(1).is_some() {
            return 0;
        }
        let date = http_date(headers, DATE).unwrap_or(timing.response_time);
        return http_date(headers, EXPIRES).map_or(0, |expires| expires.saturating_sub(date));
    }
    if let Some(ttl) = heuristics.default_ttl {
        return ttl.as_secs();
    }
    if heuristics.last_modified_fraction && (heuristically_cacheable(status) || cc.public) {
        let date = http_date(headers, DATE).unwrap_or(timing.response_time);
        if let Some(modified) = http_date(headers, LAST_MODIFIED) {
            return (date.saturating_sub(modified) / 10).min(24 * 3600);
        }
    }
    0
}

/// What a stored response may do for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reuse {
    /// Serve it: fresh enough for the request.
    Fresh,
    /// Serve it stale: the request accepts staleness (`max-stale`).
    Stale,
    /// Serve it stale and revalidate in the background (`stale-while-revalidate`).
    StaleWhileRevalidate,
    /// Ask the origin first (a conditional request when there are validators).
    Validate,
}

/// Whether a stored response of `age` and `lifetime` may answer a request with `request`
/// directives, given its own directives `stored`.
#[must_use]
pub(crate) fn reuse(
    stored: &CacheControl,
    request: &CacheControl,
    age: u64,
    lifetime: u64,
) -> Reuse {
    if stored.no_cache || request.no_cache {
        return Reuse::Validate;
    }
    match request.max_age {
        Seconds::Valid(max) if age > max => return Reuse::Validate,
        Seconds::Invalid => return Reuse::Validate,
        _ => {}
    }
    let fresh = lifetime > age;
    if fresh {
        return match request.min_fresh.get() {
            Some(min) if lifetime - age < min => Reuse::Validate,
            _ => Reuse::Fresh,
        };
    }
    // Stale from here on.
    if stored.must_revalidate || stored.proxy_revalidate || stored.s_maxage.is_present() {
        return Reuse::Validate;
    }
    let staleness = age - lifetime;
    match request.max_stale {
        Some(None) => return Reuse::Stale,
        Some(Some(max)) if staleness <= max => return Reuse::Stale,
        _ => {}
    }
    match stored.stale_while_revalidate.get() {
        Some(window) if staleness <= window => Reuse::StaleWhileRevalidate,
        _ => Reuse::Validate,
    }
}

/// True when a stale response may answer because the origin could not be reached (RFC 9111
/// §4.2.4 lets a disconnected cache serve stale), unless the response or the request demands
/// validation.
#[must_use]
pub(crate) fn stale_if_disconnected(stored: &CacheControl, request: &CacheControl) -> bool {
    !(stored.must_revalidate
        || stored.proxy_revalidate
        || stored.s_maxage.is_present()
        || stored.no_cache
        || request.no_cache)
}

/// True when a stale response may answer an error response from the origin (RFC 5861
/// `stale-if-error`, in the response or the request).
#[must_use]
pub(crate) fn stale_if_error(
    stored: &CacheControl,
    request: &CacheControl,
    age: u64,
    lifetime: u64,
) -> bool {
    if stored.must_revalidate
        || stored.proxy_revalidate
        || stored.s_maxage.is_present()
        || stored.no_cache
    {
        return false;
    }
    let staleness = age.saturating_sub(lifetime);
    [stored.stale_if_error, request.stale_if_error]
        .iter()
        .any(|window| window.get().is_some_and(|w| staleness <= w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(
                *name,
                HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("")),
            );
        }
        h
    }

    fn date(secs: u64) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
    }

    const T: u64 = 1_700_000_000;
    const AT: Timing = Timing {
        request_time: T,
        response_time: T,
    };

    #[test]
    fn age_follows_rfc_9111_4_2_3() {
        let h = headers(&[("date", date(T - 10)), ("age", "5".to_owned())]);
        assert_eq!(
            current_age(&h, AT, T),
            10,
            "apparent age beats a smaller Age"
        );
        assert_eq!(current_age(&h, AT, T + 7), 17, "plus resident time");
        let h = headers(&[("date", date(T)), ("age", "30".to_owned())]);
        assert_eq!(
            current_age(
                &h,
                Timing {
                    request_time: T - 2,
                    response_time: T
                },
                T
            ),
            32,
            "Age plus response delay"
        );
        let h = headers(&[("age", "abc".to_owned())]);
        assert_eq!(current_age(&h, AT, T), 0, "an invalid Age is ignored");
    }

    #[test]
    fn lifetime_prefers_s_maxage_then_max_age_then_expires() {
        let lifetime = |pairs: &[(&'static str, String)]| {
            let h = headers(pairs);
            freshness_lifetime(
                StatusCode::OK,
                &h,
                &CacheControl::parse(&h),
                AT,
                Heuristics::default(),
            )
        };
        assert_eq!(
            lifetime(&[("cache-control", "max-age=10, s-maxage=20".to_owned())]),
            20
        );
        assert_eq!(
            lifetime(&[
                ("cache-control", "max-age=10".to_owned()),
                ("expires", date(T + 99))
            ]),
            10
        );
        assert_eq!(
            lifetime(&[("date", date(T)), ("expires", date(T + 99))]),
            99
        );
        assert_eq!(lifetime(&[("expires", "0".to_owned())]), 0);
        assert_eq!(lifetime(&[("cache-control", "max-age=ten".to_owned())]), 0);
        assert_eq!(lifetime(&[]), 0, "no heuristics by default");
    }

    #[test]
    fn heuristic_and_default_ttls_apply_only_without_explicit_freshness() {
        let h = headers(&[("date", date(T)), ("last-modified", date(T - 1000))]);
        let cc = CacheControl::parse(&h);
        let on = Heuristics {
            last_modified_fraction: true,
            ..Heuristics::default()
        };
        assert_eq!(freshness_lifetime(StatusCode::OK, &h, &cc, AT, on), 100);
        assert_eq!(
            freshness_lifetime(StatusCode::CREATED, &h, &cc, AT, on),
            0,
            "201 is not heuristically cacheable"
        );
        let ttl = Heuristics {
            default_ttl: Some(Duration::from_secs(30)),
            ..Heuristics::default()
        };
        assert_eq!(freshness_lifetime(StatusCode::OK, &h, &cc, AT, ttl), 30);
    }

    #[test]
    fn reuse_decisions() {
        let none = CacheControl::default();
        let parse =
            |s: &'static str| CacheControl::parse(&headers(&[("cache-control", s.to_owned())]));
        assert_eq!(reuse(&none, &none, 5, 10), Reuse::Fresh);
        assert_eq!(
            reuse(&none, &none, 10, 10),
            Reuse::Validate,
            "age == lifetime is stale"
        );
        assert_eq!(reuse(&parse("no-cache"), &none, 0, 10), Reuse::Validate);
        assert_eq!(reuse(&none, &parse("no-cache"), 0, 10), Reuse::Validate);
        assert_eq!(reuse(&none, &parse("max-age=3"), 5, 10), Reuse::Validate);
        assert_eq!(reuse(&none, &parse("min-fresh=6"), 5, 10), Reuse::Validate);
        assert_eq!(reuse(&none, &parse("max-stale"), 50, 10), Reuse::Stale);
        assert_eq!(reuse(&none, &parse("max-stale=5"), 50, 10), Reuse::Validate);
        assert_eq!(
            reuse(&parse("must-revalidate"), &parse("max-stale"), 50, 10),
            Reuse::Validate
        );
        assert_eq!(
            reuse(&parse("stale-while-revalidate=60"), &none, 50, 10),
            Reuse::StaleWhileRevalidate
        );
        assert!(stale_if_error(&parse("stale-if-error=60"), &none, 50, 10));
        assert!(!stale_if_error(
            &parse("stale-if-error=60, must-revalidate"),
            &none,
            50,
            10
        ));
    }
}
