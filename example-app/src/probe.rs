//! `calories-app healthcheck`: asks the running service's `/health/live` and exits 0 or 1, for
//! container `HEALTHCHECK`s on images without curl (distroless, scratch).
//!
//! Written on `std::net` because it must run in a few milliseconds with no runtime: one
//! HTTP/1.1 request on loopback, one status line read.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// Whether `GET /health/live` on the port of `bind_addr` (on loopback) answers 200.
///
/// # Errors
/// Why the check failed: nothing listening, a timeout, or another status.
pub fn check(bind_addr: SocketAddr) -> anyhow::Result<()> {
    let ip = match bind_addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => Ipv4Addr::LOCALHOST.into(),
        SocketAddr::V6(a) if a.ip().is_unspecified() => Ipv6Addr::LOCALHOST.into(),
        a => a.ip(),
    };
    let target = SocketAddr::new(ip, bind_addr.port());
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&target, timeout)
        .map_err(|e| anyhow::anyhow!("nothing answers on {target}: {e}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /health/live HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0_u8; 64];
    let mut read = 0;
    while read < head.len() {
        match stream.read(&mut head[read..])? {
            0 => break,
            n => read += n,
        }
        if head[..read].contains(&b'\n') {
            break;
        }
    }
    let status_line = String::from_utf8_lossy(&head[..read]);
    let status_line = status_line.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        anyhow::bail!("{target}/health/live answered {status_line:?}")
    }
}
