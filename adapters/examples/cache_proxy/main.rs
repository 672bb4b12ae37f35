//! A caching reverse proxy in front of one origin, built from [`cache_adapters::HttpCacheLayer`]
//! and a hyper client: the project's RFC 9111 conformance harness.
//!
//! ```text
//! cargo run -p cache-adapters --example cache_proxy -- \
//!     --listen 127.0.0.1:8082 --upstream http://127.0.0.1:8000 [--cache-url redis://127.0.0.1:6379/0]
//! ```

mod proxy;

use std::net::SocketAddr;

use cache_core::Cache;

struct Args {
    listen: SocketAddr,
    upstream: http::Uri,
    cache_url: Option<String>,
}

const USAGE: &str =
    "usage: cache_proxy --listen ADDR:PORT --upstream http://HOST:PORT [--cache-url URL]";

fn args() -> Result<Args, String> {
    let mut listen = None;
    let mut upstream = None;
    let mut cache_url = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--listen" => {
                let address = value
                    .parse()
                    .map_err(|e| format!("--listen {value:?}: {e}\n{USAGE}"))?;
                listen = Some(address);
            }
            "--upstream" => {
                let uri: http::Uri = value
                    .parse()
                    .map_err(|e| format!("--upstream {value:?}: {e}\n{USAGE}"))?;
                if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                    return Err(format!(
                        "--upstream {value:?}: expected http://host:port\n{USAGE}"
                    ));
                }
                upstream = Some(uri);
            }
            "--cache-url" => cache_url = Some(value),
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    Ok(Args {
        listen: listen.ok_or_else(|| format!("--listen is required\n{USAGE}"))?,
        upstream: upstream.ok_or_else(|| format!("--upstream is required\n{USAGE}"))?,
        cache_url,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = match args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let cache = match &args.cache_url {
        Some(url) => Cache::connect(url).await?,
        None => Cache::memory(),
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!(
        "cache_proxy: {} -> {} ({} cache)",
        listener.local_addr()?,
        args.upstream,
        cache.backend_name()
    );
    proxy::serve(listener, proxy::stack(args.upstream, cache)).await;
    Ok(())
}
