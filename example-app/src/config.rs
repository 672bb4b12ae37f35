//! The service's configuration, read from the environment (and `.env` when present) once at start.
//!
//! Every variable is documented, with its default, in `example-app/README.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

/// The JWT secret used when `JWT_SECRET` is unset: fine on a laptop, refused in production.
pub const DEV_JWT_SECRET: &str = "dev-only-secret-do-not-use-in-production";

/// The fewest bits of key a production `JWT_SECRET` must carry (HS256's 256).
pub const MIN_PRODUCTION_SECRET_BITS: usize = 256;

/// Placeholders of `env.prod.sample`, `k8s-example/secrets.yaml.example` and the docs: a copied
/// template must not start, whatever its length.
const PLACEHOLDER_MARKS: &[&str] = &["change_me", "changeme", "change-me", "placeholder"];

/// Refuses a `JWT_SECRET` that a template or the docs hold, or that carries under
/// [`MIN_PRODUCTION_SECRET_BITS`] by its encoded length: 4 bits a character for hex (what
/// `openssl rand -hex` writes), 6 for base64, and at most 6 for anything else, since a secret a
/// person typed has far less than the 6.6 bits of a random printable character.
///
/// ```
/// use calories_app::config::check_production_secret;
/// assert!(check_production_secret("CHANGE_ME_generate_with_openssl_rand_hex_32").is_err());
/// assert!(check_production_secret(&"ab12".repeat(8)).is_err()); // 32 hex digits: 128 bits
/// assert!(check_production_secret("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08").is_ok());
/// ```
///
/// # Errors
/// Which rule the secret breaks, and how to make a good one.
pub fn check_production_secret(secret: &str) -> anyhow::Result<()> {
    const HOW: &str = "set JWT_SECRET to the output of `openssl rand -hex 32` (or `openssl rand \
                       -base64 48`); refusing to start in production";
    let lower = secret.to_ascii_lowercase();
    if secret == DEV_JWT_SECRET || PLACEHOLDER_MARKS.iter().any(|m| lower.contains(m)) {
        bail!(
            "APP_ENV=production and JWT_SECRET is missing or a placeholder from the templates; {HOW}"
        );
    }
    let is_hex = secret.chars().all(|c| c.is_ascii_hexdigit());
    let bits_per_char = if is_hex { 4 } else { 6 };
    let bits = secret.chars().count() * bits_per_char;
    // A long run of few symbols ("aaaa...") is long but not random.
    let mut distinct: Vec<char> = secret.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if bits < MIN_PRODUCTION_SECRET_BITS || distinct.len() < 8 {
        bail!(
            "APP_ENV=production and JWT_SECRET carries about {bits} bits by its length and \
             alphabet ({} characters, {}), under the {MIN_PRODUCTION_SECRET_BITS} an HS256 key \
             needs; {HOW}",
            secret.chars().count(),
            if is_hex { "hex" } else { "not hex" }
        );
    }
    Ok(())
}

/// Where the service runs: development (readable logs, a default secret) or production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// The default: human-readable logs, the development JWT secret allowed.
    Development,
    /// JSON logs; a real `JWT_SECRET` is required.
    Production,
}

/// Everything the service reads from its environment.
///
/// ```
/// let config = calories_app::Config::default();
/// assert_eq!(config.database_max_connections, 25);
/// assert_eq!(config.bind_addr.port(), 8000);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// `APP_ENV`: `development` (default) or `production`.
    pub environment: Environment,
    /// `BIND_ADDR`: where to listen; default `127.0.0.1:8000`.
    pub bind_addr: SocketAddr,
    /// `DATABASE_URL`: `sqlite://data/calories.db` by default, or `mysql://user:pass@host/db`.
    pub database_url: String,
    /// `DATABASE_MAX_CONNECTIONS`: the pool's size; default 25.
    pub database_max_connections: u32,
    /// `DATABASE_READ_URL`: a MySQL/MariaDB read replica of `DATABASE_URL` (`mysql://..`);
    /// unset, every read goes to `DATABASE_URL`. See [`crate::replica`].
    pub database_read_url: Option<String>,
    /// `DATABASE_READ_MAX_CONNECTIONS`: the replica pool's size; default
    /// `DATABASE_MAX_CONNECTIONS`.
    pub database_read_max_connections: u32,
    /// `READ_YOUR_WRITES_SECONDS`: how long after a write a user's reads go to the primary
    /// rather than the replica; default 5. Must exceed the replica's lag.
    pub read_your_writes: Duration,
    /// `CACHE_URL`: `redis://..` for a shared cache; unset, the in-process memory cache; `none`,
    /// no cache at all (every read goes to the database).
    pub cache_url: Option<String>,
    /// `CACHE_LOCAL_CAPACITY` (entries) and `CACHE_LOCAL_TTL_SECONDS` (default 5): an in-process
    /// tier in front of Redis for the answers every user shares (`/foods`), kept coherent
    /// across replicas over Redis Pub/Sub; off unless the capacity is set. The TTL bounds how
    /// stale a copy can get if an invalidation is lost. Per-user answers never go through it.
    pub cache_local_tier: Option<(u64, Duration)>,
    /// `JWT_SECRET`: the HS256 key for access tokens.
    pub jwt_secret: String,
    /// `JWT_TTL_SECONDS`: how long an access token is valid; default 15 minutes (a refresh
    /// token renews it).
    pub jwt_ttl: Duration,
    /// `REFRESH_TTL_SECONDS`: how long a session (and its refresh token) lasts unused; default
    /// 30 days.
    pub refresh_ttl: Duration,
    /// `PHOTO_DIR`: where meal photos are stored; default `./data/photos`.
    pub photo_dir: PathBuf,
    /// `RATE_LIMIT_PER_MINUTE`: requests per signed-in user per minute; default 300.
    pub rate_limit_per_minute: u32,
    /// `RATE_LIMIT_ANON_PER_MINUTE`: requests per client IP per minute without a token; default 60.
    pub rate_limit_anon_per_minute: u32,
    /// `RATE_LIMIT_AUTH_PER_MINUTE`: login and registration attempts per client IP (IPv6: per
    /// /64) and, separately, per target email, per minute, whatever token they carry; default 10.
    pub rate_limit_auth_per_minute: u32,
    /// `RATE_LIMIT_URL`: the Redis of the rate limiter's counters, any form `CACHE_URL` takes;
    /// default `CACHE_URL`. A cache Redis evicts keys under memory pressure (allkeys-lru), and an
    /// evicted counter is a reset limit: point this at a Redis with `maxmemory-policy
    /// noeviction` so that cache pressure cannot reset a client's budget.
    pub rate_limit_url: Option<String>,
    /// `UPLOADS_PER_MINUTE`: photo uploads per user per minute; default 10.
    pub uploads_per_minute: u32,
    /// `PHOTO_QUOTA_BYTES`: the photo storage each user may fill; default 100 MiB.
    pub photo_quota_bytes: u64,
    /// `TRUST_FORWARDED_FOR`: take the client IP from `X-Forwarded-For` (behind an ingress).
    pub trust_forwarded_for: bool,
    /// `CACHE_TLS_CA_FILE`: a PEM file of the CA certificates to trust for a `rediss://` (or
    /// `rediss+cluster://`) `CACHE_URL`, instead of the system's: for a Redis whose certificate
    /// a private CA signed.
    pub cache_tls_ca_file: Option<PathBuf>,
    /// `PASSWORD_HASH_CONCURRENCY`: password hashes (login, register) at once; default the
    /// number of cores. Each takes 19 MiB and a core, so this bounds the memory logins take.
    pub password_hash_concurrency: usize,
    /// `PASSWORD_HASH_WAIT_MS`: how long a login waits for a free hashing slot before it is
    /// answered 503 `busy` with `Retry-After`; default 2000.
    pub password_hash_wait: Duration,
    /// `HEADER_READ_TIMEOUT_SECONDS` (default 10), `REQUEST_TIMEOUT_SECONDS` (30),
    /// `MAX_CONCURRENT_REQUESTS` (256) and `SHUTDOWN_GRACE_SECONDS` (20): see
    /// [`crate::server`].
    pub server: crate::server::ServerLimits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            environment: Environment::Development,
            bind_addr: SocketAddr::from(([127, 0, 0, 1], 8000)),
            database_url: "sqlite://data/calories.db".to_owned(),
            database_max_connections: 25,
            database_read_url: None,
            database_read_max_connections: 25,
            read_your_writes: crate::replica::DEFAULT_READ_YOUR_WRITES,
            cache_url: None,
            cache_local_tier: None,
            jwt_secret: DEV_JWT_SECRET.to_owned(),
            jwt_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            photo_dir: PathBuf::from("data/photos"),
            rate_limit_per_minute: 300,
            rate_limit_anon_per_minute: 60,
            rate_limit_auth_per_minute: 10,
            rate_limit_url: None,
            uploads_per_minute: 10,
            photo_quota_bytes: 100 * 1024 * 1024,
            trust_forwarded_for: false,
            cache_tls_ca_file: None,
            password_hash_concurrency: std::thread::available_parallelism().map_or(2, usize::from),
            password_hash_wait: Duration::from_secs(2),
            server: crate::server::ServerLimits::default(),
        }
    }
}

impl Config {
    /// Reads `.env` (when present, without overriding what is already set), then the
    /// environment, and checks the result.
    ///
    /// # Errors
    /// A variable that does not parse, names the variable and what it expects; production
    /// without a real `JWT_SECRET`.
    pub fn from_env() -> anyhow::Result<Self> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(err) if err.not_found() => {}
            Err(err) => return Err(err).context(".env is present but cannot be read"),
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`Config::from_env`], with the variables from `lookup` (tests use a map).
    ///
    /// ```
    /// use calories_app::Config;
    /// let vars = [("APP_ENV", "production")];
    /// let config = Config::from_lookup(|n| vars.iter().find(|v| v.0 == n).map(|v| v.1.to_owned()))
    ///     .unwrap();
    /// // `migrate` needs no JWT_SECRET; serving does.
    /// let err = config.check_for_serving().unwrap_err();
    /// assert!(err.to_string().contains("JWT_SECRET"));
    /// ```
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let defaults = Self::default();
        let environment = match var("APP_ENV").as_deref().map(str::trim) {
            None | Some("development" | "dev") => Environment::Development,
            Some("production" | "prod") => Environment::Production,
            Some(other) => bail!("APP_ENV {other:?}: expected \"development\" or \"production\""),
        };
        let jwt_secret = var("JWT_SECRET").unwrap_or(defaults.jwt_secret);
        let database_max_connections =
            parse(&var, "DATABASE_MAX_CONNECTIONS", "a pool size such as 25")?
                .filter(|n| *n > 0)
                .unwrap_or(defaults.database_max_connections);
        Ok(Self {
            environment,
            bind_addr: parse(&var, "BIND_ADDR", "an address such as 0.0.0.0:8000")?
                .unwrap_or(defaults.bind_addr),
            database_url: var("DATABASE_URL").unwrap_or(defaults.database_url),
            database_max_connections,
            database_read_url: var("DATABASE_READ_URL"),
            database_read_max_connections: parse(
                &var,
                "DATABASE_READ_MAX_CONNECTIONS",
                "a pool size such as 25",
            )?
            .filter(|n| *n > 0)
            .unwrap_or(database_max_connections),
            read_your_writes: parse(&var, "READ_YOUR_WRITES_SECONDS", "seconds such as 5")?
                .filter(|s| *s > 0)
                .map_or(defaults.read_your_writes, Duration::from_secs),
            cache_local_tier: local_tier(&var)?,
            cache_url: var("CACHE_URL"),
            jwt_secret,
            jwt_ttl: parse(&var, "JWT_TTL_SECONDS", "seconds such as 3600")?
                .filter(|s| *s > 0)
                .map_or(defaults.jwt_ttl, Duration::from_secs),
            refresh_ttl: parse(&var, "REFRESH_TTL_SECONDS", "seconds such as 2592000")?
                .filter(|s| *s > 0)
                .map_or(defaults.refresh_ttl, Duration::from_secs),
            photo_dir: var("PHOTO_DIR").map_or(defaults.photo_dir, PathBuf::from),
            rate_limit_per_minute: parse(&var, "RATE_LIMIT_PER_MINUTE", "requests per minute")?
                .filter(|n| *n > 0)
                .unwrap_or(defaults.rate_limit_per_minute),
            rate_limit_anon_per_minute: parse(
                &var,
                "RATE_LIMIT_ANON_PER_MINUTE",
                "requests per minute",
            )?
            .filter(|n| *n > 0)
            .unwrap_or(defaults.rate_limit_anon_per_minute),
            rate_limit_auth_per_minute: parse(
                &var,
                "RATE_LIMIT_AUTH_PER_MINUTE",
                "attempts per minute",
            )?
            .filter(|n| *n > 0)
            .unwrap_or(defaults.rate_limit_auth_per_minute),
            rate_limit_url: var("RATE_LIMIT_URL"),
            uploads_per_minute: parse(&var, "UPLOADS_PER_MINUTE", "uploads per minute")?
                .filter(|n| *n > 0)
                .unwrap_or(defaults.uploads_per_minute),
            photo_quota_bytes: parse(&var, "PHOTO_QUOTA_BYTES", "bytes such as 104857600")?
                .unwrap_or(defaults.photo_quota_bytes),
            trust_forwarded_for: parse(&var, "TRUST_FORWARDED_FOR", "true or false")?
                .unwrap_or(defaults.trust_forwarded_for),
            cache_tls_ca_file: cache_tls_ca_file(&var)?,
            password_hash_concurrency: parse(
                &var,
                "PASSWORD_HASH_CONCURRENCY",
                "a number of hashes such as 2",
            )?
            .filter(|n| *n > 0)
            .unwrap_or(defaults.password_hash_concurrency),
            password_hash_wait: parse(&var, "PASSWORD_HASH_WAIT_MS", "milliseconds such as 2000")?
                .map_or(defaults.password_hash_wait, Duration::from_millis),
            server: server_limits(&var, defaults.server)?,
        })
    }

    /// What serving needs beyond what every command needs: in production, a real
    /// `JWT_SECRET` (see [`check_production_secret`]). `migrate` and `seed` do not sign tokens,
    /// so their containers are not given the secret.
    ///
    /// # Errors
    /// Production with a missing, placeholder or weak `JWT_SECRET`.
    pub fn check_for_serving(&self) -> anyhow::Result<()> {
        if self.is_production() {
            check_production_secret(&self.jwt_secret)?;
        }
        Ok(())
    }

    /// The limits of the rate limiter.
    #[must_use]
    pub fn limits(&self) -> crate::ratelimit::Limits {
        crate::ratelimit::Limits {
            per_user: self.rate_limit_per_minute,
            per_ip: self.rate_limit_anon_per_minute,
            per_auth: self.rate_limit_auth_per_minute,
            per_upload: self.uploads_per_minute,
        }
    }

    /// The server's bounds.
    #[must_use]
    pub fn server_limits(&self) -> crate::server::ServerLimits {
        self.server
    }

    /// Whether this is a production deployment.
    #[must_use]
    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }
}

/// The server's bounds; zero or unset keeps a default.
fn server_limits(
    var: &impl Fn(&str) -> Option<String>,
    defaults: crate::server::ServerLimits,
) -> anyhow::Result<crate::server::ServerLimits> {
    let seconds = |name: &str, default: Duration| -> anyhow::Result<Duration> {
        Ok(parse::<u64>(var, name, "seconds such as 30")?
            .filter(|s| *s > 0)
            .map_or(default, Duration::from_secs))
    };
    Ok(crate::server::ServerLimits {
        header_read_timeout: seconds("HEADER_READ_TIMEOUT_SECONDS", defaults.header_read_timeout)?,
        request_timeout: seconds("REQUEST_TIMEOUT_SECONDS", defaults.request_timeout)?,
        max_concurrent_requests: parse::<usize>(
            var,
            "MAX_CONCURRENT_REQUESTS",
            "a number such as 256",
        )?
        .filter(|n| *n > 0)
        .unwrap_or(defaults.max_concurrent_requests),
        shutdown_grace: seconds("SHUTDOWN_GRACE_SECONDS", defaults.shutdown_grace)?,
    })
}

/// `CACHE_TLS_CA_FILE`, checked against `CACHE_URL`.
fn cache_tls_ca_file(var: &impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<PathBuf>> {
    let Some(file) = var("CACHE_TLS_CA_FILE") else {
        return Ok(None);
    };
    let tls = var("CACHE_URL").is_some_and(|url| url.starts_with("rediss"));
    anyhow::ensure!(
        tls,
        "CACHE_TLS_CA_FILE is set but CACHE_URL is not rediss:// (or rediss+cluster://): \
         the CA would not be used; use rediss:// or unset CACHE_TLS_CA_FILE"
    );
    Ok(Some(PathBuf::from(file.trim())))
}

/// `CACHE_LOCAL_CAPACITY` and `CACHE_LOCAL_TTL_SECONDS`, checked against `CACHE_URL`.
fn local_tier(var: &impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<(u64, Duration)>> {
    let Some(capacity) = parse::<u64>(var, "CACHE_LOCAL_CAPACITY", "a number of entries")? else {
        return Ok(None);
    };
    if capacity == 0 {
        return Ok(None);
    }
    let remote = var("CACHE_URL").is_some_and(|url| url.starts_with("redis"));
    anyhow::ensure!(
        remote,
        "CACHE_LOCAL_CAPACITY is a tier in front of Redis: set CACHE_URL=redis://.. as well \
         (the memory cache is already local)"
    );
    let ttl = parse::<u64>(var, "CACHE_LOCAL_TTL_SECONDS", "seconds such as 5")?
        .filter(|s| *s > 0)
        .unwrap_or(5);
    Ok(Some((capacity, Duration::from_secs(ttl))))
}

fn parse<T: std::str::FromStr>(
    var: &impl Fn(&str) -> Option<String>,
    name: &str,
    expected: &str,
) -> anyhow::Result<Option<T>> {
    var(name)
        .map(|raw| {
            raw.trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("{name} {raw:?} does not parse: expected {expected}"))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        let config =
            Config::from_lookup(|n| vars.iter().find(|v| v.0 == n).map(|v| v.1.to_owned()))?;
        config.check_for_serving()?;
        Ok(config)
    }

    #[test]
    fn a_local_tier_needs_redis_and_has_a_default_ttl() {
        let c = config(&[
            ("CACHE_URL", "redis://r:6379/0"),
            ("CACHE_LOCAL_CAPACITY", "5000"),
        ])
        .unwrap();
        assert_eq!(c.cache_local_tier, Some((5000, Duration::from_secs(5))));
        let c = config(&[
            ("CACHE_URL", "redis://r:6379/0"),
            ("CACHE_LOCAL_CAPACITY", "5000"),
            ("CACHE_LOCAL_TTL_SECONDS", "2"),
        ])
        .unwrap();
        assert_eq!(c.cache_local_tier, Some((5000, Duration::from_secs(2))));
        assert_eq!(config(&[]).unwrap().cache_local_tier, None);
        let err = config(&[("CACHE_LOCAL_CAPACITY", "5000")]).unwrap_err();
        assert!(err.to_string().contains("set CACHE_URL=redis://"), "{err}");
        let err =
            config(&[("CACHE_URL", "redis://r"), ("CACHE_LOCAL_CAPACITY", "many")]).unwrap_err();
        assert!(err.to_string().contains("CACHE_LOCAL_CAPACITY"), "{err}");
    }

    #[test]
    fn production_refuses_a_missing_default_short_or_placeholder_secret() {
        let sample = include_str!("../env.prod.sample");
        let from_sample = sample
            .lines()
            .find_map(|l| l.strip_prefix("JWT_SECRET="))
            .unwrap();
        let k8s = include_str!("../../k8s-example/secrets.yaml.example");
        let from_k8s = k8s
            .lines()
            .find_map(|l| l.trim().strip_prefix("JWT_SECRET: "))
            .unwrap();
        // 64 hex digits made of 4 symbols, 32 hex digits (128 bits), 40 base64 characters (240).
        let (low_diversity, hex_128, b64_240) = (
            "abcd".repeat(16),
            "9f86d081884c7d659a2feaa0c55ad015".to_owned(),
            "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2Fy".to_owned(),
        );
        for secret in [
            None,
            Some(DEV_JWT_SECRET),
            Some("short"),
            Some(from_sample),
            Some(from_k8s),
            Some(low_diversity.as_str()),
            Some(hex_128.as_str()),
            Some(b64_240.as_str()),
        ] {
            let mut vars = vec![("APP_ENV", "production")];
            vars.extend(secret.map(|s| ("JWT_SECRET", s)));
            let err = config(&vars).unwrap_err().to_string();
            assert!(err.contains("JWT_SECRET"), "{secret:?}: {err}");
        }
        // `openssl rand -hex 32` and `openssl rand -base64 48`.
        for good in [
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "q3Jm1c7yZb0xWkE9vH2sLpT8uRnA4dFgK6iO5eYwBzQ+XjC/MtNlPaSrVhUo7GfD",
        ] {
            assert!(config(&[("APP_ENV", "production"), ("JWT_SECRET", good)]).is_ok());
        }
    }

    #[test]
    fn a_malformed_variable_is_named_in_the_error() {
        let err = config(&[("DATABASE_MAX_CONNECTIONS", "many")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("DATABASE_MAX_CONNECTIONS") && err.contains("many"),
            "{err}"
        );
        let err = config(&[("APP_ENV", "staging")]).unwrap_err().to_string();
        assert!(err.contains("APP_ENV"), "{err}");
    }

    #[test]
    fn unset_and_empty_variables_take_the_defaults() {
        let c = config(&[("CACHE_URL", " "), ("BIND_ADDR", "0.0.0.0:9000")]).unwrap();
        assert_eq!(c.cache_url, None);
        assert_eq!(c.bind_addr.port(), 9000);
        assert_eq!(c.database_max_connections, 25);
        assert_eq!(c.database_read_url, None);
        assert_eq!(c.read_your_writes, Duration::from_secs(5));
    }

    #[test]
    fn the_replica_pool_defaults_to_the_primary_pool_size() {
        let c = config(&[
            ("DATABASE_MAX_CONNECTIONS", "40"),
            ("DATABASE_READ_URL", "mysql://app:pw@replica/calories"),
            ("READ_YOUR_WRITES_SECONDS", "9"),
        ])
        .unwrap();
        assert_eq!(c.database_read_max_connections, 40);
        assert_eq!(c.read_your_writes, Duration::from_secs(9));
        let err = config(&[("READ_YOUR_WRITES_SECONDS", "soon")]).unwrap_err();
        assert!(
            err.to_string().contains("READ_YOUR_WRITES_SECONDS"),
            "{err}"
        );
    }
}
