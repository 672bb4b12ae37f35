//! A fault-injecting TCP proxy on loopback, between a client under test and a real server.
//!
//! Point the client at [`FaultProxy::url`] (or [`FaultProxy::port`]) and switch the
//! [`Mode`] at any time: the switch applies to the connections already open and to new ones.
//! Faults behave as a network would, never as a broken TCP stack: bytes are delayed, held or
//! the connection is reset, but bytes that are forwarded are forwarded whole and in order
//! (a blackhole that is lifted delivers what it held, as TCP does when a partition heals).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What the proxy does to the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything at once.
    Pass,
    /// Hold every chunk, in each direction, for this many milliseconds after it arrived: a slow
    /// network or server (a round trip takes at least twice this).
    Delay(u64),
    /// Accept connections and read what clients send, but forward nothing either way and never
    /// answer: a partition, or a server that hangs. New connections are not even passed on.
    Blackhole,
    /// Reset (RST) every open connection at once, and every new one as it arrives.
    Reset,
    /// Forward this many more bytes of the server's replies on each connection, then reset it:
    /// a reply cut mid-way. Requests pass untouched.
    CutAfter(u64),
}

/// Counters of what went through the proxy, over all its connections.
#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    from_clients: AtomicU64,
    from_server: AtomicU64,
    to_server: AtomicU64,
    to_clients: AtomicU64,
}

/// A TCP proxy on 127.0.0.1 towards `127.0.0.1:upstream`, with a [`Mode`]; stops when dropped.
///
/// Runs on the tokio runtime of the test that starts it.
pub struct FaultProxy {
    port: u16,
    mode: watch::Sender<Mode>,
    counters: Arc<Counters>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy in [`Mode::Pass`] towards the server listening on `127.0.0.1:upstream`.
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind a loopback port for the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let (mode, _) = watch::channel(Mode::Pass);
        let counters = Arc::new(Counters::default());
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            mode.clone(),
            Arc::clone(&counters),
        ));
        Self {
            port,
            mode,
            counters,
            accept,
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0`, for a Redis behind the proxy.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Switches the mode, for open connections and new ones.
    pub fn set_mode(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.counters.connections.load(Ordering::SeqCst)
    }

    /// Bytes clients have sent to the proxy (forwarded or not): zero growth means the client
    /// did not try to talk to the server at all.
    pub fn bytes_from_clients(&self) -> u64 {
        self.counters.from_clients.load(Ordering::SeqCst)
    }

    /// Bytes the server has sent to the proxy.
    pub fn bytes_from_server(&self) -> u64 {
        self.counters.from_server.load(Ordering::SeqCst)
    }

    /// Bytes forwarded to the server.
    pub fn bytes_to_server(&self) -> u64 {
        self.counters.to_server.load(Ordering::SeqCst)
    }

    /// Bytes forwarded to clients.
    pub fn bytes_to_clients(&self) -> u64 {
        self.counters.to_clients.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The accept task owns every connection's tasks: aborting it drops (closes) them all.
        self.accept.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: u16,
    mode: watch::Sender<Mode>,
    counters: Arc<Counters>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                counters.connections.fetch_add(1, Ordering::SeqCst);
                connections.spawn(serve(client, upstream, mode.subscribe(), Arc::clone(&counters)));
            }
            // Reap finished connections so that the set does not grow over a long test.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Which way a pump moves bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToServer,
    ToClient,
}

async fn serve(
    client: TcpStream,
    upstream: u16,
    mut mode: watch::Receiver<Mode>,
    counters: Arc<Counters>,
) {
    // A new connection under a blackhole is accepted and left hanging; under a reset it is reset.
    loop {
        let current = *mode.borrow_and_update();
        match current {
            Mode::Blackhole => {
                if mode.changed().await.is_err() {
                    return;
                }
            }
            Mode::Reset => return reset(client),
            _ => break,
        }
    }
    let Ok(server) = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream)).await else {
        return reset(client);
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, mut client_write) = client.into_split();
    let (server_read, mut server_write) = server.into_split();
    // Each direction: a reader that counts and queues chunks with their arrival time, and a
    // writer that forwards them as the mode says. The connection ends when either writer ends
    // (a reader's end closes its queue, which ends its writer once it has forwarded what was
    // queued); then both sockets are closed together, or reset together.
    let (up_tx, up_rx) = mpsc::unbounded_channel();
    let (down_tx, down_rx) = mpsc::unbounded_channel();
    let mut readers = JoinSet::new();
    readers.spawn(read_chunks(
        client_read,
        up_tx,
        Arc::clone(&counters),
        Direction::ToServer,
    ));
    readers.spawn(read_chunks(
        server_read,
        down_tx,
        Arc::clone(&counters),
        Direction::ToClient,
    ));
    let end = tokio::select! {
        end = forward(up_rx, &mut server_write, mode.clone(), &counters, Direction::ToServer) => end,
        end = forward(down_rx, &mut client_write, mode, &counters, Direction::ToClient) => end,
    };
    readers.abort_all();
    if end == End::Reset {
        // SO_LINGER 0 makes the close an RST instead of a FIN.
        let _ = client_write.as_ref().set_zero_linger();
        let _ = server_write.as_ref().set_zero_linger();
    }
}

/// Reads chunks until EOF or an error, counting them, and queues them with their arrival time.
async fn read_chunks(
    mut from: OwnedReadHalf,
    queue: mpsc::UnboundedSender<(Instant, Vec<u8>)>,
    counters: Arc<Counters>,
    direction: Direction,
) {
    let mut buf = vec![0_u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let counter = match direction {
            Direction::ToServer => &counters.from_clients,
            Direction::ToClient => &counters.from_server,
        };
        counter.fetch_add(n as u64, Ordering::SeqCst);
        if queue.send((Instant::now(), buf[..n].to_vec())).is_err() {
            return;
        }
    }
}

/// How a writer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Its source closed, or a write failed: close the connection.
    Closed,
    /// The mode said to reset the connection.
    Reset,
}

/// The cut budget a writer starts with under `mode`.
fn budget(mode: Mode, direction: Direction) -> Option<u64> {
    match (mode, direction) {
        (Mode::CutAfter(n), Direction::ToClient) => Some(n),
        _ => None,
    }
}

async fn forward(
    mut queue: mpsc::UnboundedReceiver<(Instant, Vec<u8>)>,
    to: &mut OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    counters: &Counters,
    direction: Direction,
) -> End {
    let forwarded = match direction {
        Direction::ToServer => &counters.to_server,
        Direction::ToClient => &counters.to_clients,
    };
    let mut current = *mode.borrow_and_update();
    // The bytes this connection may still forward, counted from when it saw the current mode.
    let mut left = budget(current, direction);
    loop {
        // Wait for a chunk, or a mode change (a reset applies to idle connections too). A mode
        // change comes first: a chunk queued after `set_mode` returned must get the new mode.
        let (arrived, mut chunk) = tokio::select! {
            biased;
            changed = mode.changed() => {
                if changed.is_err() {
                    return End::Closed;
                }
                current = *mode.borrow_and_update();
                left = budget(current, direction);
                if current == Mode::Reset {
                    return End::Reset;
                }
                continue;
            }
            next = queue.recv() => match next {
                Some(next) => next,
                None => {
                    let _ = to.shutdown().await;
                    return End::Closed;
                }
            },
        };
        // Hold the chunk for as long as the mode says; a mode change decides again.
        loop {
            match current {
                Mode::Pass | Mode::CutAfter(_) => break,
                Mode::Reset => return End::Reset,
                Mode::Delay(ms) => {
                    let due = arrived + Duration::from_millis(ms);
                    tokio::select! {
                        () = tokio::time::sleep_until(due) => break,
                        changed = mode.changed() => {
                            if changed.is_err() {
                                return End::Closed;
                            }
                        }
                    }
                }
                Mode::Blackhole => {
                    if mode.changed().await.is_err() {
                        return End::Closed;
                    }
                }
            }
            current = *mode.borrow_and_update();
            left = budget(current, direction);
        }
        let mut cut = false;
        if let Some(budget) = left {
            let take = usize::try_from(budget)
                .unwrap_or(usize::MAX)
                .min(chunk.len());
            cut = take < chunk.len();
            chunk.truncate(take);
            left = Some(budget - take as u64);
        }
        if to.write_all(&chunk).await.is_err() {
            return End::Closed;
        }
        forwarded.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        if cut {
            // Let the partial reply reach the client before the reset discards the send buffer.
            let _ = to.flush().await;
            return End::Reset;
        }
    }
}

/// Closes a socket with an RST instead of a FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}
