//! Redis Cluster as a [`Backend`](super::Backend): keys spread over the masters by hash slot.
//!
//! # Connections
//!
//! The backend holds one `redis` [`ClusterConnection`]: it keeps one multiplexed connection per
//! node, routes each command to the master that owns its key's slot, follows `MOVED` and `ASK`
//! redirections, refreshes its slot map when the topology changes and reconnects to a node that
//! comes back. Clones of it share all of that, so every operation clones it instead of checking
//! a connection out of a pool (slower, as for one node: benches/ANALYSIS.md, "Connection
//! choices"), and a pool of cluster connections would also keep one slot map per pooled
//! connection, each learning a topology change on its own.
//!
//! # Multi-key operations
//!
//! A cluster runs a multi-key command or a pipeline only when all its keys hash to the same slot
//! (otherwise `CROSSSLOT`). `get_many` and `set_many` therefore group the keys by slot, send one
//! `MGET` or one pipeline per slot, all at once over the shared connection, and put the results
//! back in the caller's order. The `redis` crate (1.8.1) does split a multi-slot `MGET` by slot
//! itself and reassembles the replies in order, but not a pipeline (it refuses one that spans
//! slots), which `set_many` needs; and when the node of one part has no connection it fails
//! the whole `MGET` with a client-side "mismatch" error, which would read as a refused command
//! rather than an outage. Grouping here gives both operations one path, each part routed,
//! redirected, retried and classified like a single-key command.
//!
//! # `delete_pattern`
//!
//! Keys matching a pattern live on every master. Each call reads the current topology
//! (`CLUSTER NODES`), so a master added or a slot moved since the last call is scanned too, then
//! runs `SCAN MATCH .. COUNT 1000` to the end on each master, over a direct connection to that
//! node, and removes what it finds with `UNLINK`, one command per slot, through the cluster
//! connection (which follows a slot that moves meanwhile).
//!
//! # Pub/Sub
//!
//! Classic Pub/Sub is broadcast to the whole cluster: `publish` sends `PUBLISH` to any node, and
//! `subscribe` listens on a plain connection to one node (the first seed that answers, else any
//! known master).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::try_join_all;
use redis::aio::MultiplexedConnection;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo as _};
use tokio::sync::mpsc;

use super::redis::{
    Prefixed, client_trusting, connect_error, get_cmd, px, refused_credentials, replace_cmd,
    scripts, set_cmd, set_if_absent_cmd, subscribe, untrusted_certificate,
};
use crate::error::{Error, ErrorKind, Result};

/// How many keys one `SCAN` step asks for.
const SCAN_BATCH: usize = 1_000;

/// How often the cluster connection retries a command: each `MOVED` or `ASK` redirection
/// counts as one, so a few are needed while slots move; more only fill the operation timeout.
const RETRIES: u32 = 3;

/// Redis Cluster through one shared, multiplexed cluster connection.
///
/// Usually built for you by [`Cache::connect`](crate::Cache::connect) from a
/// `redis+cluster://host:port,host:port` URL; build one directly to wrap it in your own
/// [`Backend`](super::Backend) decorator, given to
/// [`CacheBuilder::backend`](crate::CacheBuilder::backend).
///
/// ```no_run
/// use std::time::Duration;
/// use cache_core::backend::RedisClusterBackend;
///
/// # async fn run() -> cache_core::Result<()> {
/// let cluster = RedisClusterBackend::connect(
///     "redis+cluster://10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000",
///     Duration::from_secs(1),
///     Duration::from_millis(250),
/// )
/// .await?;
/// let cache = cache_core::Cache::builder().backend(cluster).build().await?;
/// # Ok(()) }
/// ```
pub struct RedisClusterBackend {
    connection: ClusterConnection,
    /// The seed nodes, for `subscribe` and as the template of a direct node connection.
    seeds: Vec<ConnectionInfo>,
    address: String,
    connect_timeout: Duration,
    op_timeout: Duration,
    /// The CA certificates (PEM) trusted for `rediss+cluster://` instead of the system's.
    tls_roots: Option<Vec<u8>>,
    /// Direct connections to single nodes by `host:port`, for `SCAN` (a cursor belongs to one
    /// node) and `subscribe`'s fallback; dropped on an error and made again on the next use.
    nodes: Mutex<HashMap<String, MultiplexedConnection>>,
}

impl fmt::Debug for RedisClusterBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisClusterBackend")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl RedisClusterBackend {
    /// Connects to the cluster that the seed nodes of `url` belong to:
    /// `redis+cluster://[user:password@]host:port[,host:port...]`.
    ///
    /// One answering seed is enough: the others, and every master, are learnt from it.
    /// `connect_timeout` bounds each connection attempt; `op_timeout` bounds each step of
    /// [`delete_pattern`](super::Backend::delete_pattern) and each `subscribe` attempt. Other
    /// operations are bounded by the [`Cache`](crate::Cache), which times every call it makes.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a URL that is not a cluster URL or that the `redis` crate
    /// rejects, and for refused credentials; [`ErrorKind::Connect`] naming the seeds when none
    /// answers.
    pub async fn connect(
        url: &str,
        connect_timeout: Duration,
        op_timeout: Duration,
    ) -> Result<Self> {
        match crate::url::parse(url)? {
            crate::url::Target::Cluster(nodes) => {
                Self::connect_nodes(&nodes, url, None, connect_timeout, op_timeout).await
            }
            _ => Err(Error::config(format!(
                "CACHE_URL {:?} is not a cluster URL; expected redis+cluster://host:port[,host:port...]",
                crate::url::redact(url)
            ))),
        }
    }

    /// [`connect`](Self::connect) with the URL already split into one `redis://` URL per seed,
    /// and with `tls_roots` (PEM) trusted instead of the system's roots.
    pub(crate) async fn connect_nodes(
        nodes: &[String],
        url: &str,
        tls_roots: Option<&[u8]>,
        connect_timeout: Duration,
        op_timeout: Duration,
    ) -> Result<Self> {
        let address = crate::url::redact(url);
        if let Some(first) = nodes.first() {
            // The checks a single Redis makes of the URL and the trust anchors, with its
            // messages: roots on a plain URL, PEM without a certificate.
            super::redis::client(first, tls_roots)?;
        }
        let seeds = nodes
            .iter()
            .map(|node| node.as_str().into_connection_info())
            .collect::<redis::RedisResult<Vec<_>>>()
            .map_err(|e| {
                Error::config(format!(
                    "CACHE_URL {address:?} is not a valid Redis Cluster URL"
                ))
                .with_source(e)
            })?;
        let builder = ClusterClientBuilder::new(seeds.clone())
            .connection_timeout(connect_timeout)
            // As for a single Redis: the cache times every operation itself, so no per-reply
            // timer inside the connection.
            .overall_response_timeout(None)
            .retries(RETRIES)
            // Short waits between retries (10-100 ms instead of 1.3-655 s): a retry that waits
            // longer than the operation timeout only holds a request the caller gave up on.
            .min_retry_wait(10)
            .max_retry_wait(100);
        let builder = with_tls_roots(builder, tls_roots)?;
        let client = builder.build().map_err(|e| {
            Error::config(format!(
                "CACHE_URL {address:?} is not a valid Redis Cluster URL"
            ))
            .with_source(e)
        })?;
        // The client connects to a seed, reads the slot map, then connects to every master,
        // each attempt bounded by `connect_timeout`: bound the whole as well.
        let limit = connect_timeout.saturating_mul(3);
        let connection = match tokio::time::timeout(limit, client.get_async_connection()).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(e)) => {
                let explained =
                    cluster_connect_error(&address, &seeds, tls_roots, connect_timeout, e);
                return Err(explained.await);
            }
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Connect,
                    format!(
                        "cannot connect to Redis Cluster at {address} within {limit:?}: \
                         are the nodes running and reachable?"
                    ),
                ));
            }
        };
        Ok(Self {
            connection,
            seeds,
            address,
            connect_timeout,
            op_timeout,
            tls_roots: tls_roots.map(<[u8]>::to_vec),
            nodes: Mutex::new(HashMap::new()),
        })
    }

    /// The seed addresses, as given in the URL, with any password masked.
    ///
    /// ```no_run
    /// # async fn run(cluster: cache_core::backend::RedisClusterBackend) {
    /// println!("cache on {}", cluster.address());
    /// # }
    /// ```
    #[must_use]
    pub fn address(&self) -> &str {
        &self.address
    }

    /// `GET` of `prefix` + `key`: the cache's hit path, with the same command as one node's.
    pub(crate) async fn get_prefixed(&self, prefix: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.query(&get_cmd(prefix, key)).await
    }

    /// `SET` of `prefix` + `key`: the cache's write path.
    pub(crate) async fn set_prefixed(
        &self,
        prefix: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<()> {
        self.query(&set_cmd(Prefixed(prefix, key), value, ttl))
            .await
    }

    fn conn(&self) -> ClusterConnection {
        self.connection.clone()
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        cmd.query_async(&mut self.conn())
            .await
            .map_err(cluster_error)
    }

    /// One bounded step of a long operation.
    async fn step<T>(&self, what: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(self.op_timeout, fut).await {
            Ok(result) => result,
            Err(_) => Err(Error::timeout(what, self.op_timeout)),
        }
    }

    /// The masters as `(host, port)`, read from the cluster now.
    async fn masters(&self) -> Result<Vec<(String, u16)>> {
        let nodes: String = self.query(redis::cmd("CLUSTER").arg("NODES")).await?;
        let fallback = self.seeds.first().map(host_of).unwrap_or_default();
        Ok(parse_masters(&nodes, &fallback))
    }

    /// A direct (non-cluster) connection to the node at `host:port`, and whether it was kept
    /// from an earlier call (rather than made now).
    async fn node(&self, host: &str, port: u16) -> Result<(MultiplexedConnection, bool)> {
        let key = format!("{host}:{port}");
        let held = self
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        if let Some(conn) = held {
            return Ok((conn, true));
        }
        let client = self.node_client(host, port)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(None);
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(cluster_error)?;
        self.nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, conn.clone());
        Ok((conn, false))
    }

    fn forget_node(&self, host: &str, port: u16) {
        self.nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&format!("{host}:{port}"));
    }

    /// A plain client for the node at `host:port`, with the seeds' credentials and TLS.
    fn node_client(&self, host: &str, port: u16) -> Result<redis::Client> {
        let Some(seed) = self.seeds.first() else {
            return Err(Error::config("a Redis Cluster URL needs at least one node"));
        };
        let addr = match seed.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host.to_owned(), port),
        };
        self.client(seed.clone().set_addr(addr))
    }

    /// A plain client for one node, trusting `tls_roots` when there are some.
    fn client(&self, info: ConnectionInfo) -> Result<redis::Client> {
        match &self.tls_roots {
            Some(pem) if matches!(info.addr(), ConnectionAddr::TcpTls { .. }) => {
                client_trusting(info, pem)
            }
            _ => redis::Client::open(info).map_err(cluster_error),
        }
    }

    /// Scans one master to the end, unlinking what matches; the number removed.
    async fn delete_on(&self, host: &str, port: u16, pattern: &str) -> Result<u64> {
        let mut removed = 0;
        let (node, kept) = self.step("connect", self.node(host, port)).await?;
        let mut result = self.scan_and_unlink(node, pattern, &mut removed).await;
        if let Err(e) = &result
            && e.is_unavailable()
        {
            self.forget_node(host, port);
            // A connection kept from an earlier call breaks on its first use when the node
            // restarted since: one more try on a new one, from the start (what was removed
            // stays removed, and counted). Not after a timeout: that node is slow, not new.
            if kept && !e.is_timeout() {
                let (node, _) = self.step("connect", self.node(host, port)).await?;
                result = self.scan_and_unlink(node, pattern, &mut removed).await;
                if result.as_ref().is_err_and(Error::is_unavailable) {
                    self.forget_node(host, port);
                }
            }
        }
        result.map(|()| removed)
    }

    /// `SCAN`s one node to the end over `node`, unlinking what matches, adding to `removed`.
    async fn scan_and_unlink(
        &self,
        mut node: MultiplexedConnection,
        pattern: &str,
        removed: &mut u64,
    ) -> Result<()> {
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH);
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .step("SCAN", async {
                    scan.query_async(&mut node).await.map_err(cluster_error)
                })
                .await?;
            if !keys.is_empty() {
                let unlinks = by_slot(&keys).into_values().map(|indices| {
                    let mut unlink = redis::cmd("UNLINK");
                    for i in indices {
                        unlink.arg(&keys[i]);
                    }
                    let mut conn = self.conn();
                    async move { unlink.query_async::<u64>(&mut conn).await }
                });
                let counts = self
                    .step("UNLINK", async {
                        try_join_all(unlinks).await.map_err(cluster_error)
                    })
                    .await?;
                *removed += counts.into_iter().sum::<u64>();
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

#[cfg(feature = "tls")]
fn with_tls_roots(
    builder: ClusterClientBuilder,
    tls_roots: Option<&[u8]>,
) -> Result<ClusterClientBuilder> {
    Ok(match tls_roots {
        Some(pem) => builder.certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.to_vec()),
        }),
        None => builder,
    })
}

#[cfg(not(feature = "tls"))]
fn with_tls_roots(
    builder: ClusterClientBuilder,
    tls_roots: Option<&[u8]>,
) -> Result<ClusterClientBuilder> {
    match tls_roots {
        Some(_) => Err(Error::config(
            "TLS root certificates need cache-core's \"tls\" feature",
        )),
        None => Ok(builder),
    }
}

/// The error of a failed connection to the cluster, as for a single Redis: refused
/// credentials are a configuration problem, an untrusted certificate says so, anything else is
/// a cluster that cannot be reached. The cluster client reports a failed seed connection as
/// text inside an error of its own, so the seeds are asked again, each over a plain connection
/// whose error says what went wrong.
async fn cluster_connect_error(
    address: &str,
    seeds: &[ConnectionInfo],
    tls_roots: Option<&[u8]>,
    timeout: Duration,
    err: redis::RedisError,
) -> Error {
    let config = AsyncConnectionConfig::new().set_connection_timeout(Some(timeout));
    for seed in seeds {
        let client = match tls_roots {
            Some(pem) if matches!(seed.addr(), ConnectionAddr::TcpTls { .. }) => {
                client_trusting(seed.clone(), pem).ok()
            }
            _ => redis::Client::open(seed.clone()).ok(),
        };
        let Some(client) = client else { continue };
        let attempt = client.get_multiplexed_async_connection_with_config(&config);
        if let Ok(Err(direct)) = tokio::time::timeout(timeout, attempt).await
            && (refused_credentials(&direct) || untrusted_certificate(&direct))
        {
            return connect_error(address, direct);
        }
    }
    connect_error(address, err)
}

/// The cache's error for a cluster command's: as for a single Redis, except that a redirection
/// reaching the caller is an outage, not a refusal. The cluster connection follows `MOVED` and
/// `ASK` itself; one comes out only when its retries ran out, which happens when the slot's
/// master is down (a live node redirects to it, it refuses the connection, again) or while the
/// slot is moving: either way the cluster cannot serve the key now, and it must count towards
/// the circuit breaker.
fn cluster_error(err: redis::RedisError) -> Error {
    use redis::{ErrorKind as K, ServerErrorKind as S};
    if matches!(err.kind(), K::Server(S::Moved | S::Ask)) {
        return Error::new(
            ErrorKind::Backend,
            "redis cluster is unavailable: the master of the key's slot did not answer",
        )
        .with_source(err);
    }
    Error::redis(err)
}

fn host_of(info: &ConnectionInfo) -> String {
    match info.addr() {
        ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host.clone(),
        _ => String::new(),
    }
}

/// The masters in a `CLUSTER NODES` reply that can hold keys, as `(host, port)`.
///
/// A line is `id ip:port@cport[,hostname] flags master ping pong epoch link slot...`. A node
/// that does not know its own address reports an empty ip: `fallback` (a seed's host) stands in.
/// A master still in the handshake, without an address, or failed and owning no slot holds no
/// key this cache can reach, and is skipped; a failed master that still owns slots is kept, so
/// that `delete_pattern` fails rather than silently leaving its keys.
fn parse_masters(nodes: &str, fallback: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (address, flags) = (fields.get(1)?, fields.get(2)?);
            let flags: Vec<&str> = flags.split(',').collect();
            let owns_slots = fields.len() > 8;
            if !flags.contains(&"master")
                || flags.contains(&"handshake")
                || flags.contains(&"noaddr")
                || (flags.contains(&"fail") && !owns_slots)
            {
                return None;
            }
            let address = address.split(['@', ',']).next()?;
            let (host, port) = address.rsplit_once(':')?;
            let port = port.parse().ok()?;
            let host = if host.is_empty() { fallback } else { host };
            Some((host.to_owned(), port))
        })
        .collect()
}

/// The indices of `keys`, grouped by hash slot, in order within each group.
fn by_slot<K: AsRef<[u8]>>(keys: &[K]) -> HashMap<Slot, Vec<usize>> {
    group(keys.iter().map(|key| Slot::for_key(key.as_ref())))
}

fn group<G: Hash + Eq>(groups: impl Iterator<Item = G>) -> HashMap<G, Vec<usize>> {
    let mut grouped: HashMap<G, Vec<usize>> = HashMap::new();
    for (i, g) in groups.enumerate() {
        grouped.entry(g).or_default().push(i);
    }
    grouped
}

#[async_trait]
impl super::Backend for RedisClusterBackend {
    fn name(&self) -> &'static str {
        "redis-cluster"
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.query(redis::cmd("GET").arg(key)).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let requests = by_slot(keys).into_values().map(|indices| {
            let mut mget = redis::cmd("MGET");
            for &i in &indices {
                mget.arg(&keys[i]);
            }
            let mut conn = self.conn();
            async move {
                let values: Vec<Option<Vec<u8>>> =
                    mget.query_async(&mut conn).await.map_err(cluster_error)?;
                Ok::<_, Error>((indices, values))
            }
        });
        let mut found = vec![None; keys.len()];
        for (indices, values) in try_join_all(requests).await? {
            if values.len() != indices.len() {
                return Err(Error::new(
                    ErrorKind::Backend,
                    format!(
                        "redis cluster answered MGET of {} keys with {} values",
                        indices.len(),
                        values.len()
                    ),
                ));
            }
            for (i, value) in indices.into_iter().zip(values) {
                found[i] = value;
            }
        }
        Ok(found)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        self.query(&set_cmd(key, value, ttl)).await
    }

    async fn set_many(&self, entries: &[(String, Vec<u8>)], ttl: Option<Duration>) -> Result<()> {
        let groups = group(entries.iter().map(|(key, _)| Slot::for_key(key)));
        let requests = groups.into_values().map(|indices| {
            let mut pipe = redis::pipe();
            for i in indices {
                let (key, value) = &entries[i];
                pipe.add_command(set_cmd(key, value, ttl)).ignore();
            }
            let mut conn = self.conn();
            async move { pipe.query_async::<()>(&mut conn).await }
        });
        try_join_all(requests).await.map_err(cluster_error)?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let removed: u64 = self.query(redis::cmd("UNLINK").arg(key)).await?;
        Ok(removed > 0)
    }

    async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        let masters = self.step("CLUSTER NODES", self.masters()).await?;
        let scans = masters
            .iter()
            .map(|(host, port)| self.delete_on(host, *port, pattern));
        Ok(try_join_all(scans).await?.into_iter().sum())
    }

    async fn ping(&self) -> Result<()> {
        // Routed to every master by the cluster connection: all must answer.
        let _: redis::Value = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }

    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool> {
        let stored: Option<String> = self.query(&set_if_absent_cmd(key, value, ttl)).await?;
        Ok(stored.is_some())
    }

    async fn delete_if_equals(&self, key: &str, value: &[u8]) -> Result<bool> {
        // One key, so the script runs on the master that owns it.
        scripts::delete_if_equals()
            .key(key)
            .arg(value)
            .invoke_async(&mut self.conn())
            .await
            .map_err(cluster_error)
    }

    async fn replace_if_present(&self, key: &str, value: &[u8]) -> Result<bool> {
        let replaced: Option<String> = self.query(&replace_cmd(key, value)).await?;
        Ok(replaced.is_some())
    }

    async fn get_or_create(
        &self,
        keys: &[String],
        candidates: &[Vec<u8>],
        ttl: Option<Duration>,
    ) -> Result<Vec<Vec<u8>>> {
        let millis = ttl.map_or(0, px);
        // One script call per key, each on its key's master, all at once.
        let calls = keys
            .iter()
            .zip(candidates)
            .map(|(key, candidate)| scripts::get_or_create_on(self.conn(), key, candidate, millis));
        try_join_all(calls).await.map_err(cluster_error)
    }

    async fn publish(&self, channel: &str, message: &[u8]) -> Result<()> {
        let _: redis::Value = self
            .query(redis::cmd("PUBLISH").arg(channel).arg(message))
            .await?;
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<mpsc::Receiver<Vec<u8>>> {
        // Any node hears every PUBLISH: the seeds first, then the masters known now.
        let mut last = None;
        for seed in &self.seeds {
            match self.subscribe_on(self.client(seed.clone()), channel).await {
                Ok(receiver) => return Ok(receiver),
                Err(e) => last = Some(e),
            }
        }
        if let Ok(masters) = self.step("CLUSTER NODES", self.masters()).await {
            for (host, port) in masters {
                match self
                    .subscribe_on(self.node_client(&host, port), channel)
                    .await
                {
                    Ok(receiver) => return Ok(receiver),
                    Err(e) => last = Some(e),
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::new(
                ErrorKind::Backend,
                format!(
                    "no node of the Redis Cluster at {} accepts a subscription",
                    self.address
                ),
            )
        }))
    }
}

impl RedisClusterBackend {
    async fn subscribe_on(
        &self,
        client: Result<redis::Client>,
        channel: &str,
    ) -> Result<mpsc::Receiver<Vec<u8>>> {
        let client = client?;
        self.step("SUBSCRIBE", subscribe(&client, channel)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_come_from_cluster_nodes() {
        let nodes = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001,node-b master - 0 0 2 connected 5461-10922
c3 :7002@17002 master - 0 0 3 connected 10923-16383
d4 127.0.0.1:7003@17003 slave a1 0 0 1 connected
e5 127.0.0.1:7004@17004 master,fail - 0 0 5 disconnected
f6 127.0.0.1:7005@17005 master,fail - 0 0 6 disconnected 100
g7 127.0.0.1:7006@17006 handshake - 0 0 0 connected
h8 127.0.0.1:7007@17007 master - 0 0 7 connected
";
        assert_eq!(
            parse_masters(nodes, "10.0.0.9"),
            [
                ("127.0.0.1".to_owned(), 7000),
                ("127.0.0.1".to_owned(), 7001),
                ("10.0.0.9".to_owned(), 7002),
                ("127.0.0.1".to_owned(), 7005),
                ("127.0.0.1".to_owned(), 7007),
            ]
        );
    }

    #[test]
    fn a_redirection_that_reaches_the_caller_is_an_outage() {
        let moved = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::Moved),
            "MOVED",
            "3999 127.0.0.1:7001".to_owned(),
        ));
        assert!(cluster_error(moved).is_unavailable());
        let wrong_type = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError),
            "WRONGTYPE",
        ));
        assert_eq!(cluster_error(wrong_type).kind(), ErrorKind::Rejected);
    }

    #[test]
    fn keys_are_grouped_by_slot_in_order() {
        let keys = ["{a}1", "b", "{a}2", "{a}3"];
        let groups = by_slot(&keys);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[&Slot::for_key("a")], [0, 2, 3]);
        assert_eq!(groups[&Slot::for_key("b")], [1]);
    }
}
