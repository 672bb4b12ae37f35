//! Redis Pub/Sub for the local tier's invalidation channel: a subscription on a connection of
//! its own, forwarded to a bounded channel.

use futures_util::StreamExt as _;
use tokio::sync::mpsc;

use crate::error::{Error, Result};

/// Subscribes to `channel` on a dedicated connection of `client`; the receiver closes when
/// that connection is lost. A subscribed connection can run no other command, hence its own.
pub(crate) async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> Result<mpsc::Receiver<Vec<u8>>> {
    let mut pubsub = client.get_async_pubsub().await.map_err(Error::redis)?;
    pubsub.subscribe(channel).await.map_err(Error::redis)?;
    let mut messages = pubsub.into_on_message();
    // Bounded: a receiver that stops reading holds the forwarder, not unbounded memory.
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                // The subscriber is gone (its cache was dropped): close the connection now
                // rather than at the channel's next message.
                () = tx.closed() => return,
            };
            let Some(message) = message else { return };
            if tx.send(message.get_payload_bytes().to_vec()).await.is_err() {
                return;
            }
        }
    });
    Ok(rx)
}
