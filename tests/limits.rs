//! Counting people, not requests: the per-client limits, with clients on distinct loopback
//! addresses (127.0.0.2, 127.0.0.3, ...: all of 127/8 reaches the node), directly and
//! through a trusted proxy's `X-Forwarded-For`.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::Value;
use support::node::{Node, PATIENCE, TOKEN};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// An HTTP client whose connections come from `from`.
fn http_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip(from))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

type Socket = WebSocketStream<tokio::net::TcpStream>;

/// Opens a socket to `path_and_query` from `from` with extra `headers`; a refusal gives its
/// status and JSON body.
async fn ws_from(
    node: &Node,
    from: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Result<Socket, (u16, Value)> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(ip(from), 0)).unwrap();
    let stream = socket.connect(node.addr).await.unwrap();
    let mut req = node.ws_url(path_and_query).into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let handshake = tokio::time::timeout(PATIENCE, tokio_tungstenite::client_async(req, stream));
    match handshake.await.expect("handshake timed out") {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp.body().as_deref().unwrap_or_default();
            Err((
                resp.status().as_u16(),
                serde_json::from_slice(body).unwrap_or(Value::Null),
            ))
        }
        Err(e) => panic!("websocket to {path_and_query} from {from} failed: {e}"),
    }
}

/// A viewer socket from `from` that got its welcome.
async fn viewer_from(
    node: &Node,
    from: &str,
    campaign: &str,
    headers: &[(&str, &str)],
) -> Result<Socket, (u16, Value)> {
    use futures_util::StreamExt;
    let mut ws = ws_from(node, from, &format!("/ws/v1/campaigns/{campaign}"), headers).await?;
    match tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("welcome timed out")
    {
        Some(Ok(Message::Text(t))) => assert!(t.contains(r#""type":"welcome""#), "{t}"),
        other => panic!("no welcome: {other:?}"),
    }
    Ok(ws)
}

/// Closes `ws` and waits for the server's close reply (the server then drops the socket).
async fn close(mut ws: Socket) {
    use futures_util::{SinkExt, StreamExt};
    ws.send(Message::Close(None)).await.unwrap();
    while let Ok(Some(Ok(m))) = tokio::time::timeout(PATIENCE, ws.next()).await {
        if m.is_close() {
            break;
        }
    }
}

/// `livetally_rejected_total{reason}` of a node.
async fn rejected(node: &Node, reason: &str) -> f64 {
    support::load::metric(node, &format!("livetally_rejected_total{{reason=\"{reason}\"}}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_holds_at_most_max_sockets_per_client_viewer_sockets() {
    let node = Node::start(&["--max-sockets-per-client", "3"]);
    node.campaign("crowd").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(viewer_from(&node, "127.0.0.2", "crowd", &[]).await.unwrap());
    }
    let (status, body) = viewer_from(&node, "127.0.0.2", "crowd", &[]).await.err().unwrap();
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_connections", "{body}");
    // A plain GET of the socket URL answers what the upgrade would be refused with.
    let resp = http_from("127.0.0.2")
        .get(node.url("/ws/v1/campaigns/crowd"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "too_many_connections"
    );
    assert_eq!(rejected(&node, "too_many_connections").await, 2.0);

    // Another address is not affected, and operators of this one are exempt.
    let other = viewer_from(&node, "127.0.0.3", "crowd", &[]).await.unwrap();
    let operator = ws_from(
        &node,
        "127.0.0.2",
        &format!("/ws/v1/campaigns/crowd?role=operator&token={TOKEN}"),
        &[],
    )
    .await
    .expect("operator socket from a client at its viewer limit");
    let s = node.await_stats("crowd", "4 viewers", |s| s["viewers"] == 4).await;
    assert_eq!(s["viewers"], 4, "the refused socket was never counted");

    // Closing one of 127.0.0.2's sockets makes room for exactly one more.
    close(held.pop().unwrap()).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let again = loop {
        match viewer_from(&node, "127.0.0.2", "crowd", &[]).await {
            Ok(ws) => break ws,
            Err((429, _)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("no room after a close: {e:?}"),
        }
    };
    assert_eq!(
        viewer_from(&node, "127.0.0.2", "crowd", &[]).await.err().unwrap().0,
        429
    );
    drop((again, other, operator, held));
}
