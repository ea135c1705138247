//! The API server's address on the lab network: a TCP forwarder listening on
//! 192.0.2.1:6443 inside the bridge namespace that relays each connection to the API
//! server on 127.0.0.1 in the root namespace.
//!
//! The speakers thus reach the API server over the lab's layer-2 network, as on a real
//! cluster, and a route in one node namespace cuts that node off; while the user's
//! kubectl and the controller use 127.0.0.1, and nothing is added to the root namespace.

use std::net::SocketAddr;

use tokio::task::JoinHandle;

use crate::lab::error::LabError;
use crate::lab::netns::tcp_listener_in;

/// Starts relaying connections to `listen` (inside `netns`) to `target` (reached from
/// the root namespace).
pub fn spawn(
    netns: &str,
    listen: SocketAddr,
    target: SocketAddr,
) -> Result<JoinHandle<()>, LabError> {
    let listener = tcp_listener_in(netns, listen)?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = inbound.set_nodelay(true);
                let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let _ = outbound.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    }))
}
