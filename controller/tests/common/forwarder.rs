//! A TCP forwarder to the API server that a test can cut and restore, to put
//! the API out of the controller's reach while the test's own client still
//! talks to the server directly.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Relays connections on a loopback port to `target` until cut.
pub struct Forwarder {
    /// Where the controller connects.
    pub addr: SocketAddr,
    cut: watch::Sender<bool>,
    /// Bumped to close the connections held while cut.
    release: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl Forwarder {
    /// Starts relaying to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind forwarder");
        let addr = listener.local_addr().unwrap();
        let (cut, _) = watch::channel(false);
        let (release, _) = watch::channel(0u64);
        let (cut_tx, release_tx) = (cut.clone(), release.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let mut cut_rx = cut_tx.subscribe();
                let mut release_rx = release_tx.subscribe();
                tokio::spawn(async move {
                    if *cut_rx.borrow() {
                        // A black hole, as a partition looks to the client: the
                        // connection is accepted and never answered until released.
                        let _ = release_rx.changed().await;
                        return;
                    }
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Forwarder {
            addr,
            cut,
            release,
            task,
        }
    }

    /// Drops every open connection and black-holes new ones.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Relays new connections again; those held while cut stay held (their
    /// requests, such as watches, still hang) until [`Self::release_held`].
    pub fn restore_keeping_held(&self) {
        self.cut.send_replace(false);
    }

    /// Closes the connections held while cut: their clients see an error and retry.
    pub fn release_held(&self) {
        self.release.send_modify(|g| *g += 1);
    }

    /// Relays again; connections held while cut are closed.
    pub fn restore(&self) {
        self.restore_keeping_held();
        self.release_held();
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
