//! The app's own connection to the Redis that `CACHE_URL` names, beside the cache's: the rate
//! limiter runs its Lua script over it. Every URL form cache-core accepts works here too:
//! `redis://`, `rediss://` (TLS, trusting `CACHE_TLS_CA_FILE` when set), and
//! `redis+cluster://` / `rediss+cluster://` (a Redis Cluster, seeds separated by commas).
//!
//! cache-core keeps its connections private, so the app opens one of its own; the URL is split
//! into seeds here the way cache-core splits it (same form, same errors for the user).

use std::time::Duration;

use anyhow::{Context, bail};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{FromRedisValue, ScriptInvocation};

/// How long connecting at start may take before the start fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection (multiplexed, reconnecting) to a single Redis or to a Redis Cluster.
#[derive(Clone)]
pub enum SharedRedis {
    /// `redis://` or `rediss://`.
    Server(ConnectionManager),
    /// `redis+cluster://` or `rediss+cluster://`: commands go to the master of their key's slot.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for SharedRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Server(_) => "SharedRedis::Server",
            Self::Cluster(_) => "SharedRedis::Cluster",
        })
    }
}

impl SharedRedis {
    /// Connects to `url`; with `ca_pem`, a TLS URL trusts those CA certificates instead of the
    /// system's.
    ///
    /// # Errors
    /// A malformed URL, an unreadable CA, or a Redis that does not answer within 5 s.
    pub async fn connect(url: &str, ca_pem: Option<&[u8]>) -> anyhow::Result<Self> {
        let shown = crate::db::redact(url);
        let certs = |pem: &[u8]| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.to_vec()),
        };
        if let Some(nodes) = cluster_seeds(url)? {
            let mut builder = ClusterClientBuilder::new(nodes)
                .connection_timeout(CONNECT_TIMEOUT)
                .retries(2)
                .min_retry_wait(10)
                .max_retry_wait(100);
            if let Some(pem) = ca_pem {
                builder = builder.certs(certs(pem));
            }
            let client = builder
                .build()
                .with_context(|| format!("CACHE_URL {shown:?} is not a valid Redis Cluster URL"))?;
            let connection = tokio::time::timeout(
                CONNECT_TIMEOUT.saturating_mul(3),
                client.get_async_connection(),
            )
            .await
            .map_err(|_| anyhow::anyhow!("Redis Cluster at {shown} did not answer within 15 s"))?
            .with_context(|| format!("cannot connect to Redis Cluster at {shown}"))?;
            return Ok(Self::Cluster(connection));
        }
        let client = match ca_pem {
            Some(pem) => redis::Client::build_with_tls(url, certs(pem)),
            None => redis::Client::open(url),
        }
        .with_context(|| format!("CACHE_URL {shown:?} is not a valid Redis URL"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = tokio::time::timeout(
            CONNECT_TIMEOUT,
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| anyhow::anyhow!("Redis at {shown} did not answer within 5 s"))?
        .with_context(|| format!("cannot connect to Redis at {shown}"))?;
        Ok(Self::Server(connection))
    }

    /// Runs a script (`EVALSHA`, loading it on `NOSCRIPT`); on a cluster, on the master of its
    /// keys' slot, so every key of one invocation must share a slot (a hash tag).
    ///
    /// # Errors
    /// What Redis or the connection says.
    pub async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> redis::RedisResult<T> {
        match self {
            Self::Server(connection) => invocation.invoke_async(&mut connection.clone()).await,
            Self::Cluster(connection) => invocation.invoke_async(&mut connection.clone()).await,
        }
    }
}

impl SharedRedis {
    /// Runs one command; on a cluster, on the master of its key's slot.
    ///
    /// # Errors
    /// What Redis or the connection says.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        match self {
            Self::Server(connection) => cmd.query_async(&mut connection.clone()).await,
            Self::Cluster(connection) => cmd.query_async(&mut connection.clone()).await,
        }
    }
}

/// The seeds of a cluster URL as one `redis://` (or `rediss://`) URL each; `None` for a URL
/// that is not a cluster URL.
///
/// ```
/// use calories_app::redis_conn::cluster_seeds;
/// assert_eq!(
///     cluster_seeds("redis+cluster://u:p@h1:7000,h2:7001").unwrap(),
///     Some(vec!["redis://u:p@h1:7000".to_owned(), "redis://u:p@h2:7001".to_owned()])
/// );
/// assert_eq!(cluster_seeds("redis://h:6379/0").unwrap(), None);
/// assert!(cluster_seeds("redis+cluster://h1:7000/2").is_err());
/// ```
///
/// # Errors
/// A cluster URL without hosts, with a host without a port, or with a database other than 0.
pub fn cluster_seeds(url: &str) -> anyhow::Result<Option<Vec<String>>> {
    let (scheme, rest) = match url.split_once("://") {
        Some(("redis+cluster", rest)) => ("redis", rest),
        Some(("rediss+cluster", rest)) => ("rediss", rest),
        _ => return Ok(None),
    };
    const FORM: &str = "expected redis+cluster://[user:pass@]host:port[,host:port...]";
    let shown = crate::db::redact(url);
    // The userinfo ends at the last `@`: a password may contain `@`, `/` or `,`.
    let (userinfo, hosts) = match rest.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, rest),
    };
    let (hosts, database) = hosts.split_once('/').unwrap_or((hosts, ""));
    if !matches!(database, "" | "0") {
        bail!("CACHE_URL {shown:?}: a Redis Cluster has only database 0; {FORM}");
    }
    let mut seeds = Vec::new();
    for node in hosts.split(',').map(str::trim) {
        let valid = node.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !valid {
            bail!("CACHE_URL {shown:?}: {node:?} is not host:port; {FORM}");
        }
        seeds.push(match userinfo {
            Some(userinfo) => format!("{scheme}://{userinfo}@{node}"),
            None => format!("{scheme}://{node}"),
        });
    }
    Ok(Some(seeds))
}
