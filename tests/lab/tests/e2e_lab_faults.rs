//! The lab's fault injection against the real kernel, without ferrolb: the API server
//! down and up (watches reset, connections refused), API latency and failures on the
//! path the speakers and the controller use, a node isolated from its peers, and frame
//! loss between nodes. Needs root, iproute2, nftables and iputils-ping (CI installs them).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ferrolb_lab::netns::in_netns_async;
use ferrolb_lab::plan::{API_PORT, API_V4, CLIENT_V4};
use ferrolb_lab::{Lab, LabError, LabOptions, report};

fn network_only(nodes: usize) -> LabOptions {
    LabOptions {
        controller: false,
        speakers: false,
        example_services: false,
        nodes,
        ..LabOptions::default()
    }
}

fn lab_api() -> SocketAddr {
    SocketAddr::from((API_V4, API_PORT))
}

/// One HTTP/1.1 exchange with `Connection: close`: the status code and the body.
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: lab\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {out:?}")))?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((code, body.to_string()))
}

/// [`http`] from inside `netns`.
async fn http_in(
    netns: &str,
    addr: SocketAddr,
    method: &'static str,
    path: String,
    body: String,
) -> Result<(u16, String), LabError> {
    in_netns_async(netns, move || {
        http(addr, method, &path, &body).map_err(LabError::io(format!("{method} {path}")))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_down_resets_open_watches_and_refuses_until_up_for_speakers_and_controller() {
    let lab = Lab::start(network_only(2)).await.expect("lab starts");
    let n1 = lab.node("n1").unwrap().netns;
    let controller_api = lab.controller_api_addr();
    // The controller's kubeconfig names its forwarder, not the API server.
    let kc = std::fs::read_to_string(lab.controller_kubeconfig()).unwrap();
    assert!(kc.contains(&format!("http://{controller_api}")), "{kc}");

    // A watch from n1, open through the forwarder, past its response headers.
    let mut watch = in_netns_async(&n1, || {
        let mut s = TcpStream::connect_timeout(&lab_api(), Duration::from_secs(2))
            .map_err(LabError::io("connecting"))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(LabError::io("timeout"))?;
        write!(
            s,
            "GET /api/v1/namespaces/default/configmaps?watch=1 HTTP/1.1\r\nHost: lab\r\n\r\n"
        )
        .map_err(LabError::io("writing"))?;
        Ok(s)
    })
    .await
    .unwrap();
    let mut buf = [0u8; 512];
    let n = watch.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );

    lab.api_down().await.unwrap();
    assert!(
        report::status(&lab).await.unwrap().contains("api-down"),
        "status shows the fault"
    );
    let t = Instant::now();
    let ended = tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 512];
        loop {
            match watch.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => continue,
                Err(e) => return Err(e.kind()),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(ended, Err(std::io::ErrorKind::ConnectionReset));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // New connections are refused, from a node and from the controller's side.
    let err = http_in(&n1, lab_api(), "GET", "/api/v1/nodes".into(), String::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
    let err = http(controller_api, "GET", "/api/v1/nodes", "").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    // The lab itself still sees the API server.
    assert!(lab.kubectl(&["get", "nodes"]).await.unwrap().contains("n1"));

    lab.api_up().await.unwrap();
    let (code, body) = http_in(&n1, lab_api(), "GET", "/api/v1/nodes".into(), String::new())
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"n2\""), "{body}");
    assert_eq!(
        http(controller_api, "GET", "/api/v1/nodes", "").unwrap().0,
        200
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_delay_writes_slows_writes_but_not_reads() {
    let lab = Lab::start(network_only(1)).await.expect("lab starts");
    let n1 = lab.node("n1").unwrap().netns;
    lab.api_delay_writes(Duration::from_secs(2)).await.unwrap();
    assert!(
        report::status(&lab)
            .await
            .unwrap()
            .contains("api-delay-writes 2s")
    );

    let t = Instant::now();
    let (code, body) = http_in(
        &n1,
        lab_api(),
        "GET",
        "/api/v1/namespaces/default/configmaps".into(),
        String::new(),
    )
    .await
    .unwrap();
    let read = t.elapsed();
    assert_eq!(code, 200, "{body}");
    assert!(read < Duration::from_secs(1), "a GET took {read:?}");

    let t = Instant::now();
    let (code, body) = http_in(
        &n1,
        lab_api(),
        "POST",
        "/api/v1/namespaces/default/configmaps".into(),
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"slow"}}"#.into(),
    )
    .await
    .unwrap();
    let write = t.elapsed();
    assert_eq!(code, 201, "{body}");
    assert!(write >= Duration::from_secs(2), "a POST took {write:?}");
    assert!(write < Duration::from_secs(4), "a POST took {write:?}");
    eprintln!("api-delay-writes 2s: GET {read:?}, POST {write:?}");

    lab.api_normal().await.unwrap();
    let t = Instant::now();
    let (code, _) = http_in(
        &n1,
        lab_api(),
        "DELETE",
        "/api/v1/namespaces/default/configmaps/slow".into(),
        String::new(),
    )
    .await
    .unwrap();
    assert_eq!(code, 200);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_fail_answers_about_that_share_of_requests_503() {
    let lab = Lab::start(network_only(1)).await.expect("lab starts");
    let n1 = lab.node("n1").unwrap().netns;
    lab.api_fail(30).await.unwrap();
    const REQUESTS: usize = 200;
    let codes = in_netns_async(&n1, || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut codes = Vec::with_capacity(REQUESTS);
        for _ in 0..REQUESTS {
            if Instant::now() > deadline {
                break;
            }
            let (code, body) = http(lab_api(), "GET", "/api/v1/nodes", "")
                .map_err(LabError::io("GET /api/v1/nodes"))?;
            if code == 503 {
                assert!(body.contains("\"kind\":\"Status\""), "{body}");
            }
            codes.push(code);
        }
        Ok(codes)
    })
    .await
    .unwrap();
    assert_eq!(codes.len(), REQUESTS, "all requests within the time bound");
    let failed = codes.iter().filter(|c| **c == 503).count();
    let ok = codes.iter().filter(|c| **c == 200).count();
    assert_eq!(failed + ok, REQUESTS, "{codes:?}");
    // 30 % of 200 is 60, with a standard deviation of 6.5: a band of over ±4 of them.
    eprintln!("api-fail 30: {failed} of {REQUESTS} requests answered 503");
    assert!((30..=95).contains(&failed), "{failed} of {REQUESTS} failed");

    lab.api_fail(0).await.unwrap();
    for _ in 0..20 {
        let (code, _) = http_in(&n1, lab_api(), "GET", "/api/v1/nodes".into(), String::new())
            .await
            .unwrap();
        assert_eq!(code, 200);
    }
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolate_drops_traffic_between_the_node_and_its_peers_only() {
    let lab = Lab::start(network_only(3)).await.expect("lab starts");
    let ip = |n: &str| IpAddr::V4(lab.node(n).unwrap().v4);
    let every = Duration::from_millis(20);
    assert_eq!(
        lab.ping("n1", ip("n2"), 3, every).await.unwrap().received,
        3
    );

    lab.isolate("n1").await.unwrap();
    let status = report::status(&lab).await.unwrap();
    assert!(
        status.contains("isolate n1") && status.contains("ISOLATED"),
        "{status}"
    );
    assert_eq!(
        lab.ping("n1", ip("n2"), 5, every).await.unwrap().received,
        0
    );
    assert_eq!(
        lab.ping("n3", ip("n1"), 5, every).await.unwrap().received,
        0
    );
    // The others still hear each other; the client and the API host still reach n1.
    assert_eq!(
        lab.ping("n2", ip("n3"), 5, every).await.unwrap().received,
        5
    );
    assert_eq!(
        lab.ping("n1", IpAddr::V4(CLIENT_V4), 5, every)
            .await
            .unwrap()
            .received,
        5
    );
    assert_eq!(
        lab.ping("client", ip("n1"), 5, every)
            .await
            .unwrap()
            .received,
        5
    );
    let n1 = lab.node("n1").unwrap().netns;
    let (code, _) = http_in(&n1, lab_api(), "GET", "/api/v1/nodes".into(), String::new())
        .await
        .unwrap();
    assert_eq!(code, 200, "the API server still answers n1");

    lab.unisolate("n1").await.unwrap();
    assert_eq!(lab.fault_summary().await, "none");
    assert_eq!(
        lab.ping("n1", ip("n2"), 5, every).await.unwrap().received,
        5
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_drops_a_band_of_frames_between_nodes_but_none_of_the_client() {
    let lab = Lab::start(network_only(2)).await.expect("lab starts");
    let n2 = IpAddr::V4(lab.node("n2").unwrap().v4);
    let n1 = IpAddr::V4(lab.node("n1").unwrap().v4);
    let every = Duration::from_millis(10);
    // Neighbours resolved before the loss, so that it acts on the echoes alone.
    assert_eq!(lab.ping("n1", n2, 3, every).await.unwrap().received, 3);
    assert_eq!(lab.ping("client", n1, 3, every).await.unwrap().received, 3);

    lab.loss(50).await.unwrap();
    assert!(report::status(&lab).await.unwrap().contains("loss 50%"));
    let between = lab.ping("n1", n2, 200, every).await.unwrap();
    assert_eq!(between.transmitted, 200, "{between:?}");
    // A request and its reply each pass with probability 1/2: about 50 of 200 echoes
    // come back (standard deviation 6.1); the band is generous.
    assert!(
        (15..=100).contains(&between.received),
        "{between:?} between nodes at loss 50%"
    );
    let client = lab.ping("client", n1, 200, every).await.unwrap();
    eprintln!("loss 50: node to node {between:?}, client to node {client:?}");
    assert_eq!(client.received, 200, "client traffic is spared: {client:?}");

    lab.loss(0).await.unwrap();
    assert_eq!(lab.ping("n1", n2, 20, every).await.unwrap().received, 20);
    lab.shutdown().await;
}
