//! The service's configuration, read from the environment (and `.env` when present) once at start.
//!
//! Every variable is documented, with its default, in `example-app/README.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

/// The JWT secret used when `JWT_SECRET` is unset: fine on a laptop, refused in production.
pub const DEV_JWT_SECRET: &str = "dev-only-secret-do-not-use-in-production";

/// The shortest `JWT_SECRET` accepted with `APP_ENV=production` (256 bits of HS256 key).
pub const MIN_PRODUCTION_SECRET_LEN: usize = 32;

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
    /// `CACHE_URL`: `redis://..` for a shared cache; unset, the in-process memory cache; `none`,
    /// no cache at all (every read goes to the database).
    pub cache_url: Option<String>,
    /// `CACHE_LOCAL_CAPACITY` (entries) and `CACHE_LOCAL_TTL_SECONDS` (default 5): an in-process
    /// tier in front of Redis, kept coherent across replicas over Redis Pub/Sub; off unless the
    /// capacity is set. The TTL bounds how stale a copy can get if an invalidation is lost.
    pub cache_local_tier: Option<(u64, Duration)>,
    /// `JWT_SECRET`: the HS256 key for access tokens.
    pub jwt_secret: String,
    /// `JWT_TTL_SECONDS`: how long an access token is valid; default one hour.
    pub jwt_ttl: Duration,
    /// `PHOTO_DIR`: where meal photos are stored; default `./data/photos`.
    pub photo_dir: PathBuf,
    /// `RATE_LIMIT_PER_MINUTE`: requests per signed-in user per minute; default 300.
    pub rate_limit_per_minute: u32,
    /// `RATE_LIMIT_ANON_PER_MINUTE`: requests per client IP per minute without a token; default 60.
    pub rate_limit_anon_per_minute: u32,
    /// `TRUST_FORWARDED_FOR`: take the client IP from `X-Forwarded-For` (behind an ingress).
    pub trust_forwarded_for: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            environment: Environment::Development,
            bind_addr: SocketAddr::from(([127, 0, 0, 1], 8000)),
            database_url: "sqlite://data/calories.db".to_owned(),
            database_max_connections: 25,
            cache_url: None,
            cache_local_tier: None,
            jwt_secret: DEV_JWT_SECRET.to_owned(),
            jwt_ttl: Duration::from_secs(3600),
            photo_dir: PathBuf::from("data/photos"),
            rate_limit_per_minute: 300,
            rate_limit_anon_per_minute: 60,
            trust_forwarded_for: false,
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
    /// let err = Config::from_lookup(|n| vars.iter().find(|v| v.0 == n).map(|v| v.1.to_owned()))
    ///     .unwrap_err();
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
        if environment == Environment::Production
            && (jwt_secret == DEV_JWT_SECRET || jwt_secret.len() < MIN_PRODUCTION_SECRET_LEN)
        {
            bail!(
                "APP_ENV=production needs JWT_SECRET set to a random secret of at least \
                 {MIN_PRODUCTION_SECRET_LEN} characters (for example `openssl rand -base64 48`); \
                 refusing to start with a missing or default one"
            );
        }
        Ok(Self {
            environment,
            bind_addr: parse(&var, "BIND_ADDR", "an address such as 0.0.0.0:8000")?
                .unwrap_or(defaults.bind_addr),
            database_url: var("DATABASE_URL").unwrap_or(defaults.database_url),
            database_max_connections: parse(
                &var,
                "DATABASE_MAX_CONNECTIONS",
                "a pool size such as 25",
            )?
            .filter(|n| *n > 0)
            .unwrap_or(defaults.database_max_connections),
            cache_local_tier: local_tier(&var)?,
            cache_url: var("CACHE_URL"),
            jwt_secret,
            jwt_ttl: parse(&var, "JWT_TTL_SECONDS", "seconds such as 3600")?
                .filter(|s| *s > 0)
                .map_or(defaults.jwt_ttl, Duration::from_secs),
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
            trust_forwarded_for: parse(&var, "TRUST_FORWARDED_FOR", "true or false")?
                .unwrap_or(defaults.trust_forwarded_for),
        })
    }

    /// Whether this is a production deployment.
    #[must_use]
    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }
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
        Config::from_lookup(|n| vars.iter().find(|v| v.0 == n).map(|v| v.1.to_owned()))
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
    fn production_refuses_a_missing_default_or_short_secret() {
        for vars in [
            vec![("APP_ENV", "production")],
            vec![("APP_ENV", "production"), ("JWT_SECRET", DEV_JWT_SECRET)],
            vec![("APP_ENV", "production"), ("JWT_SECRET", "short")],
        ] {
            let err = config(&vars).unwrap_err().to_string();
            assert!(err.contains("JWT_SECRET"), "{err}");
        }
        let secret = "x".repeat(MIN_PRODUCTION_SECRET_LEN);
        assert!(config(&[("APP_ENV", "production"), ("JWT_SECRET", &secret)]).is_ok());
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
    }
}
