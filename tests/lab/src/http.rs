//! The lab's HTTP pieces: the responder that stands in for a Service's pods on each
//! node (it answers with the node's name) and the client's request.
//!
//! Both are deliberately tiny HTTP/1.0 exchanges over plain sockets: the point is to
//! see *which node* a packet to a Service IP reached, not to test HTTP.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::error::LabError;
use crate::netns::tcp_listener_in;
use crate::plan::HTTP_PORT;

/// Largest request head the responder reads.
const MAX_REQUEST: usize = 4096;

/// Serves `body` on `[::]:80` (dual stack) inside `netns`, from the current runtime.
pub fn spawn_responder(netns: &str, body: &str) -> Result<JoinHandle<()>, LabError> {
    let listener = tcp_listener_in(netns, SocketAddr::from(([0u16; 8], HTTP_PORT)))?;
    let body = format!("{body}\n");
    Ok(tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), async move {
                    let mut buf = vec![0u8; MAX_REQUEST];
                    let mut len = 0;
                    while len < buf.len() {
                        let n = stream.read(&mut buf[len..]).await?;
                        if n == 0 {
                            break;
                        }
                        len += n;
                        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    let response = format!(
                        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    stream.write_all(response.as_bytes()).await?;
                    stream.shutdown().await
                })
                .await;
            });
        }
    }))
}

/// GETs `/` from `ip`:80 and returns the body, trimmed. Blocking, and meant to run on a
/// thread inside the client namespace. `timeout` bounds the connect and each read.
pub fn get(ip: IpAddr, timeout: Duration) -> Result<String, LabError> {
    let addr = SocketAddr::new(ip, HTTP_PORT);
    let what = format!("GET http://{addr}/");
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(LabError::io(what.clone()))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(LabError::io(what.clone()))?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(LabError::io(what.clone()))?;
    let host = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    stream
        .write_all(format!("GET / HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .map_err(LabError::io(what.clone()))?;
    let mut response = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut response)
        .map_err(LabError::io(what.clone()))?;
    parse_body(&response).ok_or_else(|| LabError::Config(format!("{what}: malformed response")))
}

/// The body of a `200` response, trimmed.
pub fn parse_body(response: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(response).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.lines()
        .next()?
        .split_whitespace()
        .nth(1)
        .filter(|code| *code == "200")?;
    Some(body.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_of_a_200_is_read_and_anything_else_refused() {
        assert_eq!(
            parse_body(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nn1\n").as_deref(),
            Some("n1")
        );
        assert_eq!(parse_body(b"HTTP/1.0 500 Oops\r\n\r\nn1\n"), None);
        assert_eq!(parse_body(b"HTTP/1.0 200 OK\r\n"), None);
        assert_eq!(parse_body(b"\xff\xfe"), None);
    }
}
