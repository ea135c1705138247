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
        let cut_tx = cut.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let mut cut_rx = cut_tx.subscribe();
                tokio::spawn(async move {
                    if *cut_rx.borrow() {
                        // A black hole, as a partition looks to the client: the
                        // connection is accepted and never answered until restored.
                        let _ = cut_rx.wait_for(|c| !*c).await;
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
        Forwarder { addr, cut, task }
    }

    /// Drops every open connection and black-holes new ones.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Relays again; connections held while cut are closed.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
