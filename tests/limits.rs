//! Counting people, not requests: the per-client limits, with clients on distinct loopback
//! addresses (127.0.0.2, 127.0.0.3, ...: all of 127/8 reaches the node), directly and
//! through a trusted proxy's `X-Forwarded-For`.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::{json, Value};
use support::node::{Backend, Node, PATIENCE, TOKEN};
use support::wait::{eventually, throughout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

on_every_store!(
    public_writes_past_the_budget_are_refused_and_not_counted,
    a_connect_loop_mints_no_crowd,
);

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

async fn register(node: &Node, from: &str, campaign: &str, viewer: &str) -> reqwest::Response {
    register_with(node, from, campaign, viewer, &[]).await
}

async fn register_with(
    node: &Node,
    from: &str,
    campaign: &str,
    viewer: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = http_from(from)
        .post(node.url(&format!("/api/v1/campaigns/{campaign}/registrations")))
        .json(&json!({ "viewer": viewer }));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn share_visit(node: &Node, from: &str, campaign: &str) -> u16 {
    let resp = http_from(from)
        .get(node.url(&format!("/s/{campaign}?via=test")))
        .send()
        .await
        .unwrap();
    resp.status().as_u16()
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
    let again = eventually("room after a close", || async {
        match viewer_from(&node, "127.0.0.2", "crowd", &[]).await {
            Ok(ws) => Ok(ws),
            Err((429, body)) => Err(format!("429 {body:?}")),
            Err(e) => panic!("no room after a close: {e:?}"),
        }
    })
    .await;
    assert_eq!(
        viewer_from(&node, "127.0.0.2", "crowd", &[]).await.err().unwrap().0,
        429
    );
    drop((again, other, operator, held));
}

async fn public_writes_past_the_budget_are_refused_and_not_counted(backend: Backend) {
    let node = Node::start_with(backend, &["--max-public-writes-per-client", "5"]);
    node.campaign("signup").await;
    for i in 0..5 {
        let resp = register(&node, "127.0.0.2", "signup", &format!("viewer-a-{i:04}")).await;
        assert_eq!(resp.status().as_u16(), 201);
    }
    let resp = register(&node, "127.0.0.2", "signup", "viewer-a-0005").await;
    assert_eq!(resp.status().as_u16(), 429);
    // Five a minute: the next write is 12 s away.
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=12).contains(&retry), "Retry-After {retry}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(
        node.stats("signup").await["registrations"],
        5,
        "the refused one is not counted"
    );
    // Another address has its own budget.
    let resp = register(&node, "127.0.0.3", "signup", "viewer-b-0000").await;
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(node.stats("signup").await["registrations"], 6);

    // Share visits take from the same budget: 127.0.0.2 has none left, 127.0.0.4 has five.
    assert_eq!(share_visit(&node, "127.0.0.2", "signup").await, 302);
    for _ in 0..6 {
        assert_eq!(share_visit(&node, "127.0.0.4", "signup").await, 302);
    }
    // One more visit, from an address with budget left and on a channel of its own: once
    // the store has it, it has everything counted before it (a flush takes all a campaign
    // has), and the two visits past the budget are not there.
    let last = http_from("127.0.0.5").get(node.url("/s/signup?via=last")).send().await;
    assert_eq!(last.unwrap().status(), 302);
    let report = eventually("the last visit in the report", || async {
        let (status, report) = node.op("GET", "/api/v1/campaigns/signup/report", None).await;
        assert_eq!(status, 200, "{report}");
        (report["share_visits_by_channel"]["last"] == 1).then_some(report)
    })
    .await;
    assert_eq!(report["share_visits"], 6, "{report}");
    assert_eq!(report["share_visits_by_channel"], json!({"test": 5, "last": 1}));
    assert_eq!(rejected(&node, "client_rate_limited").await, 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_names_the_client_only_from_a_trusted_proxy() {
    let node = Node::start(&[
        "--trusted-proxies",
        "127.0.0.2",
        "--max-public-writes-per-client",
        "1",
        "--max-sockets-per-client",
        "1",
    ]);
    node.campaign("proxied").await;
    let xff = |v| [("x-forwarded-for", v)];

    // (peer, X-Forwarded-For, status) in order, each a registration of a new viewer.
    let a = "198.51.100.1";
    let b = "203.0.113.9, 198.51.100.2";
    let c = "198.51.100.3";
    let d = "198.51.100.4";
    let cases = [
        // Through the trusted proxy, each forwarded address is a client of its own ...
        ("127.0.0.2", a, 201),
        ("127.0.0.2", b, 201),
        ("127.0.0.2", a, 429),
        // ... and what the client wrote left of its own address changes nothing.
        ("127.0.0.2", "203.0.113.77, 198.51.100.1", 429),
        // From an untrusted peer the header is ignored: the peer is the client.
        ("127.0.0.3", c, 201),
        ("127.0.0.3", d, 429),
    ];
    for (i, (peer, forwarded, expected)) in cases.into_iter().enumerate() {
        let viewer = format!("viewer-x-{i:04}");
        let resp = register_with(&node, peer, "proxied", &viewer, &xff(forwarded)).await;
        assert_eq!(resp.status().as_u16(), expected, "from {peer} for {forwarded}");
    }

    // The same for sockets (--max-sockets-per-client 1); the admitted ones stay open.
    let mut open = Vec::new();
    for (peer, forwarded, admitted) in [
        ("127.0.0.2", a, true),
        ("127.0.0.2", b, true),
        ("127.0.0.2", a, false),
        ("127.0.0.3", c, true),
        ("127.0.0.3", d, false),
    ] {
        match viewer_from(&node, peer, "proxied", &xff(forwarded)).await {
            Ok(ws) if admitted => open.push(ws),
            Err((429, _)) if !admitted => {}
            other => panic!("socket from {peer} for {forwarded}: {:?}", other.map(|_| "admitted")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eleventh_wrong_operator_token_in_a_minute_locks_the_address_out() {
    let node = Node::start(&[]);
    node.campaign("guarded").await;
    let list = |from: &str, token: &str| {
        http_from(from)
            .get(node.url("/api/v1/campaigns"))
            .bearer_auth(token)
            .send()
    };
    let wrong = "wrong-operator-token-0123456789";
    for i in 0..10 {
        assert_eq!(
            list("127.0.0.2", wrong).await.unwrap().status().as_u16(),
            403,
            "attempt {i}"
        );
    }
    let resp = list("127.0.0.2", wrong).await.unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "rate_limited");

    // The right token does not help the locked-out address, on routes or sockets ...
    assert_eq!(list("127.0.0.2", TOKEN).await.unwrap().status().as_u16(), 429);
    let (status, body) = ws_from(
        &node,
        "127.0.0.2",
        &format!("/ws/v1/campaigns/guarded?role=operator&token={TOKEN}"),
        &[],
    )
    .await
    .err()
    .unwrap();
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("rate_limited")));
    // ... while another address still gets its 401/403, and in with the right token.
    let no_token = http_from("127.0.0.3")
        .get(node.url("/api/v1/campaigns"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status().as_u16(), 401);
    assert_eq!(list("127.0.0.3", wrong).await.unwrap().status().as_u16(), 403);
    assert_eq!(list("127.0.0.3", TOKEN).await.unwrap().status().as_u16(), 200);
    let (status, _) = node.op("GET", "/api/v1/campaigns", None).await;
    assert_eq!(status, 200, "127.0.0.1 is another address too");
}

/// One connect, like, close round from `from` as viewer `viewer`.
async fn connect_like_close(node: &Node, from: &str, campaign: &str, viewer: &str) {
    use futures_util::SinkExt;
    let path = format!("{campaign}?viewer={viewer}");
    let mut ws = viewer_from(node, from, &path, &[]).await.unwrap();
    let like = json!({"type": "interact", "kind": "like"}).to_string();
    ws.send(Message::text(like)).await.unwrap();
    close(ws).await;
}

async fn a_connect_loop_mints_no_crowd(backend: Backend) {
    let node = Node::start_with(backend, &["--unique-after", "10s", "--max-connects-per-client", "3000"]);
    node.campaign("loop").await;
    // 400 anonymous connect, like, close loops from one address: within the connect budget.
    for i in 0..400 {
        connect_like_close(&node, "127.0.0.2", "loop", &format!("loop-viewer-{i:04}")).await;
    }
    // Every like counts; none of the 400 sockets stayed 10 s, so nobody is a viewer or an
    // interactor. (Read once all 400 likes are in: the loop's last flush is behind them.)
    let s = node
        .await_stats("loop", "400 likes and no viewer", |s| {
            s["interactions"]["like"] == 400 && s["viewers"] == 0
        })
        .await;
    assert_eq!(
        (s["unique_viewers"].as_u64(), s["interactors"].as_u64()),
        (Some(0), Some(0)),
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_stays_qualifies_its_viewer_and_its_earlier_likes() {
    use futures_util::SinkExt;
    let node = Node::start(&["--unique-after", "500ms"]);
    node.campaign("dwell").await;
    // A like at once, before the dwell: it counts at once, the viewer only after 500 ms.
    let mut stays = viewer_from(&node, "127.0.0.2", "dwell?viewer=viewer-stays", &[])
        .await
        .unwrap();
    let like = json!({"type": "interact", "kind": "like"}).to_string();
    stays.send(Message::text(like)).await.unwrap();
    // A socket that leaves at once never qualifies.
    connect_like_close(&node, "127.0.0.2", "dwell", "viewer-leaves").await;
    let s = node
        .await_stats("dwell", "2 likes", |s| s["interactions"]["like"] == 2)
        .await;
    assert_eq!(s["viewers"], 1, "{s}");
    let s = node
        .await_stats("dwell", "the staying viewer qualified", |s| s["unique_viewers"] == 1)
        .await;
    assert_eq!(
        s["interactors"], 1,
        "its like before the dwell makes it an interactor: {s}"
    );
    // The viewer who left never counts, however long one waits past its dwell.
    throughout(Duration::from_secs(1), || async {
        let s = node.stats("dwell").await;
        assert_eq!(
            (s["unique_viewers"].as_u64(), s["interactors"].as_u64()),
            (Some(1), Some(1)),
            "{s}"
        );
    })
    .await;
    close(stays).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_past_the_budget_get_429_with_retry_after() {
    // Fifteen a minute: a bucket of five, then one every 4 s.
    let node = Node::start(&[
        "--max-connects-per-client",
        "15",
        "--allowed-origins",
        "https://brand.example",
    ]);
    node.campaign("budget").await;
    // Refusals for other reasons spend nothing.
    for _ in 0..3 {
        assert_eq!(
            viewer_from(&node, "127.0.0.2", "nowhere", &[]).await.err().unwrap().0,
            404
        );
    }
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(viewer_from(&node, "127.0.0.2", "budget", &[]).await.unwrap());
    }
    let (status, body) = viewer_from(&node, "127.0.0.2", "budget", &[]).await.err().unwrap();
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert_eq!(rejected(&node, "client_rate_limited").await, 1.0);
    // The SDK cannot read a failed upgrade's status: a plain GET tells it, with CORS, and
    // spends nothing (the next upgrade is up to 4 s away).
    let resp = http_from("127.0.0.2")
        .get(node.url("/ws/v1/campaigns/budget"))
        .header("origin", "https://brand.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=4).contains(&retry), "Retry-After {retry}");
    assert_eq!(resp.headers()["access-control-allow-origin"], "https://brand.example");
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "rate_limited");
    // The refused socket was never counted; another address and an operator are not limited.
    let other = viewer_from(&node, "127.0.0.3", "budget", &[]).await.unwrap();
    let operator = ws_from(
        &node,
        "127.0.0.2",
        &format!("/ws/v1/campaigns/budget?role=operator&token={TOKEN}"),
        &[],
    )
    .await
    .expect("operator socket from a client past its connect budget");
    let s = node.await_stats("budget", "6 viewers", |s| s["viewers"] == 6).await;
    assert_eq!(s["unique_viewers"], 6, "{s}");
    // Another address's plain GET is the usual 400: it was refused nothing.
    let resp = http_from("127.0.0.3")
        .get(node.url("/ws/v1/campaigns/budget"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    drop((held, other, operator));
}
