//! A Redis Cluster of three masters on loopback: started, joined and given the slots by the
//! tests, one master killed or restarted on demand, a fourth added, a slot moved.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use std::net::{Ipv4Addr, TcpListener};

use super::free_port;

/// True when nothing listens on `port` now.
fn free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// The slots of each of the three first masters.
const SLOTS: [(u16, u16); 3] = [(0, 5460), (5461, 10922), (10923, 16383)];

/// A Redis Cluster of three masters (no replicas) on 127.0.0.1, each node in its own temporary
/// directory, all killed when dropped.
///
/// Each `redis-server` runs under a small `sh` that kills it when its stdin closes: when this
/// value is dropped, and also when the test process dies without dropping it (a panic that
/// aborts, a cluster kept in a `static`), so that no server outlives the tests.
pub struct RedisCluster {
    nodes: Vec<Node>,
}

struct Node {
    /// The plain client port; without TLS the cluster bus listens on `port + 10000` (the
    /// default, so that Redis 6, which has no `--cluster-port`, runs the tests too).
    port: u16,
    /// With TLS: the TLS client port (the bus listens on this one + 10000, over TLS) and the
    /// files of the certificate.
    tls: Option<(u16, ClusterTls)>,
    dir: tempfile::TempDir,
    /// The `sh` watching the server; `None` while killed.
    watcher: Option<Child>,
}

/// The certificate files of a cluster that speaks TLS to clients and on its bus.
#[derive(Clone)]
pub struct ClusterTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// A free port whose `+ 10000` (its cluster bus port) is free too.
fn free_bus_port() -> u16 {
    loop {
        let port = free_port();
        if port <= u16::MAX - 10_000 && free(port + 10_000) {
            return port;
        }
    }
}

impl Node {
    fn new(tls: Option<&ClusterTls>) -> Self {
        let (port, tls) = match tls {
            None => (free_bus_port(), None),
            Some(files) => (free_port(), Some((free_bus_port(), files.clone()))),
        };
        Self {
            port,
            tls,
            dir: tempfile::tempdir().expect("temp dir for redis-server"),
            watcher: None,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port clients of the cluster (and its bus, + 10000) use: the TLS one with TLS.
    fn cluster_port(&self) -> u16 {
        self.tls.as_ref().map_or(self.port, |(port, _)| *port)
    }

    fn spawn(&mut self) -> bool {
        let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
        let log = self.dir.path().join("redis.log");
        let watcher = Command::new("sh")
            .arg("-c")
            // `read` returns when our end of its stdin closes, however this process ends.
            .arg(r#""$0" "$@" & pid=$!; read _; kill -9 "$pid" 2>/dev/null; wait "$pid""#)
            .arg(&binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--appendonly", "no", "--save", ""])
            .args(self.tls.iter().flat_map(|(port, files)| {
                [
                    "--tls-port".into(),
                    port.to_string().into(),
                    "--tls-cluster".into(),
                    "yes".into(),
                    "--tls-cert-file".into(),
                    files.cert.clone().into_os_string(),
                    "--tls-key-file".into(),
                    files.key.clone().into_os_string(),
                    "--tls-ca-cert-file".into(),
                    files.ca.clone().into_os_string(),
                    "--tls-auth-clients".into(),
                    "no".into(),
                ]
            }))
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run sh for {binary:?} ({e})"));
        self.watcher = Some(watcher);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(Ok(Some(_exited))) = self.watcher.as_mut().map(Child::try_wait) {
                self.watcher = None;
                return false;
            }
            if self.try_connection().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// SIGKILLs the server (through its watcher) and waits until it is gone.
    fn kill(&mut self) {
        if let Some(mut watcher) = self.watcher.take() {
            drop(watcher.stdin.take());
            let _ = watcher.wait();
        }
    }

    fn try_connection(&self) -> Option<redis::Connection> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_millis(200))
            .ok()?;
        redis::cmd("PING").query::<String>(&mut conn).ok()?;
        Some(conn)
    }

    fn connection(&self) -> redis::Connection {
        self.try_connection()
            .unwrap_or_else(|| panic!("connect to the cluster node on port {}", self.port))
    }

    fn id(&self) -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut self.connection())
            .expect("CLUSTER MYID")
    }

    /// True when this node's `CLUSTER NODES` shows every other node `connected`, out of
    /// handshake and not suspected of failure.
    fn links_up(&self) -> bool {
        let Some(nodes) = self.try_connection().and_then(|mut conn| {
            redis::cmd("CLUSTER")
                .arg("NODES")
                .query::<String>(&mut conn)
                .ok()
        }) else {
            return false;
        };
        nodes
            .lines()
            .filter(|line| !line.trim().is_empty())
            .all(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let flags = fields.get(2).copied().unwrap_or_default();
                fields.get(7) == Some(&"connected")
                    && !flags.contains("handshake")
                    && !flags.contains("fail")
                    && !flags.contains("noaddr")
            })
    }

    /// `CLUSTER INFO` as one string, empty when the node does not answer.
    fn info(&self) -> String {
        self.try_connection()
            .and_then(|mut conn| redis::cmd("CLUSTER").arg("INFO").query(&mut conn).ok())
            .unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

impl RedisCluster {
    /// Starts three masters on free ports, joins them and splits the 16384 slots between them,
    /// then waits until every node says the cluster is ok and knows all three.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Starts a cluster whose nodes speak only TLS to cluster clients and to each other, with
    /// the certificate and key in these PEM files, and the CA certificate that signed it; the
    /// plain ports stay open, for looking behind the client's back. Redis 7 or later.
    pub fn start_tls(tls: ClusterTls) -> Self {
        Self::start_with(Some(tls))
    }

    fn start_with(tls: Option<ClusterTls>) -> Self {
        // Another test may take a free port between our probe and the server's bind: retry.
        for _ in 0..5 {
            let mut nodes: Vec<Node> = (0..3).map(|_| Node::new(tls.as_ref())).collect();
            if !nodes.iter_mut().all(Node::spawn) {
                continue;
            }
            let cluster = Self { nodes };
            cluster.join();
            return cluster;
        }
        panic!("the cluster's redis-servers did not start after 5 attempts");
    }

    /// One cluster for every test of this test binary that asks for it, started on first use.
    /// Its servers die with the test process (see [`RedisCluster`]).
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    fn join(&self) {
        let mut first = self.nodes[0].connection();
        for node in &self.nodes[1..] {
            let _: () = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(node.cluster_port())
                .query(&mut first)
                .expect("CLUSTER MEET");
        }
        for (node, (from, to)) in self.nodes.iter().zip(SLOTS) {
            // ADDSLOTS rather than ADDSLOTSRANGE (Redis 7): the same on Redis 6.
            let _: () = redis::cmd("CLUSTER")
                .arg("ADDSLOTS")
                .arg((from..=to).collect::<Vec<u16>>())
                .query(&mut node.connection())
                .expect("CLUSTER ADDSLOTS");
        }
        self.wait_until_ok();
    }

    /// Waits until every running node reports `cluster_state:ok`, knows every node, and has
    /// its cluster-bus link to each of them up (Pub/Sub messages travel on those links: a
    /// node whose link is still in handshake would miss them).
    pub fn wait_until_ok(&self) {
        let known = format!("cluster_known_nodes:{}", self.nodes.len());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let infos: Vec<String> = self.nodes.iter().map(Node::info).collect();
            if infos
                .iter()
                .all(|info| info.contains("cluster_state:ok") && info.contains(&known))
                && self.nodes.iter().all(Node::links_up)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not become ok within 30 s: {infos:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis+cluster://127.0.0.1:P0,127.0.0.1:P1,127.0.0.1:P2`: every master as a seed;
    /// `rediss+cluster://` with the TLS ports for a cluster started with
    /// [`start_tls`](Self::start_tls).
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.cluster_port()))
            .collect();
        let scheme = if self.nodes[0].tls.is_some() {
            "rediss+cluster"
        } else {
            "redis+cluster"
        };
        format!("{scheme}://{}", seeds.join(","))
    }

    /// How many masters the cluster has.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Master `i`'s port for cluster clients (the TLS one with TLS).
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].cluster_port()
    }

    /// A plain (non-cluster) connection to master `i`, for looking behind the cache's back.
    pub fn node(&self, i: usize) -> redis::Connection {
        self.nodes[i].connection()
    }

    /// How many keys master `i` holds.
    pub fn dbsize(&self, i: usize) -> u64 {
        redis::cmd("DBSIZE")
            .query(&mut self.node(i))
            .expect("DBSIZE")
    }

    /// The master that owns `key`'s slot.
    pub fn master_of(&self, key: &str) -> usize {
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.node(0))
            .expect("CLUSTER KEYSLOT");
        SLOTS
            .iter()
            .position(|(from, to)| (*from..=*to).contains(&slot))
            .expect("a slot of the first three masters")
    }

    /// SIGKILLs master `i`: its connections break at once and its slots go unserved.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts master `i` again on the same port, in the same directory (its `nodes.conf` keeps
    /// its identity and slots; its keys are gone), and waits until the cluster is ok again.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].kill();
        assert!(
            self.nodes[i].spawn(),
            "redis-server did not restart on port {}",
            self.nodes[i].port
        );
        self.wait_until_ok();
    }

    /// Starts a new, empty master, joins it to the cluster and waits until every node knows
    /// it; its index.
    pub fn add_master(&mut self) -> usize {
        let tls = self.nodes[0].tls.as_ref().map(|(_, files)| files.clone());
        let mut node = Node::new(tls.as_ref());
        assert!(node.spawn(), "the new master did not start");
        let _: () = redis::cmd("CLUSTER")
            .arg("MEET")
            .arg("127.0.0.1")
            .arg(node.cluster_port())
            .query(&mut self.node(0))
            .expect("CLUSTER MEET");
        self.nodes.push(node);
        self.wait_until_ok();
        self.nodes.len() - 1
    }

    /// Moves `slot`, with its keys, from master `from` to master `to` the way `redis-cli
    /// --cluster reshard` does (IMPORTING, MIGRATING, MIGRATE, SETSLOT NODE everywhere), and
    /// waits until every node agrees.
    pub fn move_slot(&self, slot: u16, from: usize, to: usize) {
        let (source, target) = (&self.nodes[from], &self.nodes[to]);
        let (source_id, target_id) = (source.id(), target.id());
        let setslot = |node: &Node, state: &str, id: &str| {
            let _: () = redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg(state)
                .arg(id)
                .query(&mut node.connection())
                .expect("CLUSTER SETSLOT");
        };
        setslot(target, "IMPORTING", &source_id);
        setslot(source, "MIGRATING", &target_id);
        let mut conn = source.connection();
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(100)
                .query(&mut conn)
                .expect("CLUSTER GETKEYSINSLOT");
            if keys.is_empty() {
                break;
            }
            let _: () = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(target.port)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query(&mut conn)
                .expect("MIGRATE");
        }
        // The target first, so that its config epoch wins over the source's claim.
        setslot(target, "NODE", &target_id);
        setslot(source, "NODE", &target_id);
        for (i, node) in self.nodes.iter().enumerate() {
            if i != from && i != to {
                setslot(node, "NODE", &target_id);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.nodes.iter().all(|node| {
            let ranges: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query(&mut node.connection())
                .unwrap_or_default();
            ranges
                .iter()
                .any(|range| owner_of(range, slot) == Some(target.port))
        }) {
            assert!(
                Instant::now() < deadline,
                "the nodes did not agree on slot {slot}'s new owner within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait_until_ok();
    }
}

/// The port of the master of one `CLUSTER SLOTS` entry (`[first, last, [ip, port, id], ...]`)
/// when the entry covers `slot`.
fn owner_of(range: &[redis::Value], slot: u16) -> Option<u16> {
    use redis::Value::{Array, Int};
    match (range.first()?, range.get(1)?, range.get(2)?) {
        (Int(first), Int(last), Array(master)) if (*first..=*last).contains(&i64::from(slot)) => {
            match master.get(1)? {
                Int(port) => u16::try_from(*port).ok(),
                _ => None,
            }
        }
        _ => None,
    }
}
