//! A connection that LISTENs on channels and waits for their
//! notifications (a worker's wake-ups), with its own single-threaded
//! runtime, driven only while a call waits on it.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client};

use super::connections::{open, PgSettings};
use super::error::PgFailure;
use crate::core::sqlite::ErrorKind;

/// A notification heard: its channel and payload.
pub type Heard = (String, String);

pub struct Listener {
    runtime: Runtime,
    client: Client,
    heard: mpsc::UnboundedReceiver<Heard>,
    describe: String,
}

impl Listener {
    /// Connects and LISTENs on each channel (quoted as identifiers).
    pub fn connect(settings: &PgSettings, channels: &[String]) -> Result<Listener, PgFailure> {
        let (runtime, client, mut connection) = open(settings)?;
        let (send, heard) = mpsc::unbounded_channel();
        runtime.spawn(async move {
            // Reads the connection's messages (while a call drives the
            // runtime), passing notifications on; ends with the connection.
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(message)) = messages.next().await {
                if let AsyncMessage::Notification(n) = message {
                    let _ = send.send((n.channel().to_string(), n.payload().to_string()));
                }
            }
        });
        let listen: String = channels
            .iter()
            .map(|c| format!("LISTEN \"{}\";", c.replace('"', "\"\"")))
            .collect();
        let describe = settings.describe();
        runtime
            .block_on(client.batch_execute(&listen))
            .map_err(|e| PgFailure::from_client(&format!("Listening on {describe} failed"), &e))?;
        Ok(Listener {
            runtime,
            client,
            heard,
            describe,
        })
    }

    /// Waits up to `timeout` for a notification; returns those heard (none
    /// when the time ran out). A lost connection is an error.
    pub fn wait(&mut self, timeout: Duration) -> Result<Vec<Heard>, PgFailure> {
        if self.client.is_closed() {
            return Err(self.lost());
        }
        let heard = &mut self.heard;
        let first = self
            .runtime
            .block_on(async { tokio::time::timeout(timeout, heard.recv()).await });
        let mut all = Vec::new();
        match first {
            Ok(Some(one)) => all.push(one),
            Ok(None) => return Err(self.lost()),
            Err(_) => {
                if self.client.is_closed() {
                    return Err(self.lost());
                }
                return Ok(all);
            }
        }
        while let Ok(more) = self.heard.try_recv() {
            all.push(more);
        }
        Ok(all)
    }

    fn lost(&self) -> PgFailure {
        let mut failure = PgFailure::new(
            ErrorKind::Interface,
            format!("Lost the connection listening on {}", self.describe),
        );
        failure.lost = true;
        failure
    }
}
