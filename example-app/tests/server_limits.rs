//! The server's bounds over real TCP: a slowloris client (headers a byte at a time) is cut off
//! at the header timeout, an upload at a few bytes a second gets a 408 at the request timeout,
//! requests past the concurrency limit get 503 `busy`, and shutdown returns within its grace
//! while a request is still in flight. Every wait is bounded.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use calories_app::server::ServerLimits;
use serde_json::Value;
use support::{Stack, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const LIMITS: ServerLimits = ServerLimits {
    header_read_timeout: Duration::from_secs(1),
    request_timeout: Duration::from_secs(2),
    max_concurrent_requests: 1,
    shutdown_grace: Duration::from_secs(1),
};
/// Room for a loaded 2-core machine.
const MARGIN: Duration = Duration::from_secs(2);

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
    _app: TestApp,
}

async fn start(limits: ServerLimits) -> Running {
    let app = TestApp::start_with(Stack::SqliteMemory, |c| c.server = limits).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(calories_app::serve(listener, app.state.clone(), async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        server,
        _app: app,
    }
}

/// Reads until the server closes the connection or `limit` passes; the bytes read, and
/// whether it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match tokio::time::timeout(deadline - Instant::now(), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    (out, false)
}

/// Sends `bytes` one at a time, `every` apart, until they are sent, the server closes, or
/// `limit` passes; returns when the sending stopped and whether all was sent.
async fn trickle(stream: &mut TcpStream, bytes: &[u8], every: Duration, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    for byte in bytes {
        if Instant::now() > deadline || stream.write_all(&[*byte]).await.is_err() {
            return false;
        }
        tokio::time::sleep(every).await;
    }
    true
}

/// Starts a login whose body never comes, and returns once the handler is reading it: hyper
/// answers `100 Continue` when the handler first polls the body, so the request holds its
/// concurrency slot and counts as in flight from then on.
async fn hold_a_request(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&seen).contains("100 Continue") {
        assert!(
            Instant::now() < deadline,
            "no 100 Continue: {}",
            String::from_utf8_lossy(&seen)
        );
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before 100 Continue");
        seen.extend_from_slice(&buf[..n]);
    }
    stream.write_all(b"{").await.unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_client_is_cut_off_at_the_header_timeout() {
    let server = start(LIMITS).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let headers = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    // A byte every 100 ms: the whole header would take 7 s, the server allows 1 s.
    let all_sent = trickle(
        &mut stream,
        headers,
        Duration::from_millis(100),
        Duration::from_secs(10),
    )
    .await;
    let (_, closed) = read_until_closed(&mut stream, MARGIN).await;
    let took = started.elapsed();
    assert!(
        !all_sent || closed,
        "the trickled headers were read to the end"
    );
    assert!(closed, "the connection was still open after {took:?}");
    assert!(
        took < LIMITS.header_read_timeout + MARGIN,
        "cut off only after {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_at_a_few_bytes_a_second_gets_408_at_the_request_timeout() {
    let server = start(LIMITS).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let body = br#"{"email": "slow@example.com", "password": "correct horse battery"}"#;
    let head = format!(
        "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let writer = async {
        trickle(
            &mut stream,
            body,
            Duration::from_millis(200),
            Duration::from_secs(10),
        )
        .await
    };
    // The body would take 13 s; the answer must come at the 2 s request timeout.
    let _ = tokio::time::timeout(LIMITS.request_timeout + MARGIN, writer).await;
    let (response, _) = read_until_closed(&mut stream, MARGIN).await;
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let json: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json["error"]["code"], "request_timeout");
    assert!(
        took < LIMITS.request_timeout + MARGIN,
        "answered after {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_concurrency_limit_requests_get_503_busy_and_probes_still_answer() {
    let limits = ServerLimits {
        request_timeout: Duration::from_secs(20),
        ..LIMITS
    };
    let server = start(limits).await;
    // One request holds the only slot: its body never comes.
    let holder = hold_a_request(server.addr).await;
    let busy = support::eventually(Duration::from_secs(5), || async {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /foods?q=egg HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (response, _) = read_until_closed(&mut stream, MARGIN).await;
        let text = String::from_utf8_lossy(&response);
        text.starts_with("HTTP/1.1 503")
            && text.to_lowercase().contains("retry-after:")
            && text.contains("\"busy\"")
    })
    .await;
    assert!(
        busy,
        "a second request was not refused while the slot was held"
    );
    let mut probe = TcpStream::connect(server.addr).await.unwrap();
    probe
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (response, _) = read_until_closed(&mut probe, MARGIN).await;
    assert!(String::from_utf8_lossy(&response).starts_with("HTTP/1.1 200"));
    drop(holder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_within_its_grace_while_a_request_hangs() {
    let limits = ServerLimits {
        request_timeout: Duration::from_secs(60),
        ..LIMITS
    };
    let mut server = start(limits).await;
    let hanging = hold_a_request(server.addr).await;
    let started = Instant::now();
    server.stop.take().unwrap().send(()).unwrap();
    let result = tokio::time::timeout(limits.shutdown_grace + MARGIN, &mut server.server).await;
    let took = started.elapsed();
    assert!(
        matches!(result, Ok(Ok(Ok(())))),
        "serve did not return within {took:?}"
    );
    assert!(
        took >= limits.shutdown_grace,
        "it did not wait for the request ({took:?})"
    );
    drop(hanging);
}
