//! Graceful shutdown: stop accepting, ack what was taken, close viewers with 1001, exit 0.

mod support;

use support::node::Backend;

on_every_store!(sigterm_acks_what_was_sent_then_closes_viewers_with_1001,);

use serde_json::json;
use support::node::{End, Node};

async fn sigterm_acks_what_was_sent_then_closes_viewers_with_1001(backend: Backend) {
    let mut node = Node::spawn_with(backend, &["--max-interactions-per-sec", "1000"]);
    node.campaign("bye").await;
    let mut viewers = Vec::new();
    for i in 0..5 {
        let mut ws = node.viewer("bye", &format!("session=session-{i:04}")).await;
        ws.next().await;
        viewers.push(ws);
    }
    // Each viewer sends 10 likes; wait until the node has taken them all (in the tally or
    // the store), then stop it while the last acks may still be pending.
    for ws in &mut viewers {
        for seq in 1..=10 {
            ws.send(json!({"type":"interact","kind":"like","seq":seq})).await;
        }
    }
    node.await_stats("bye", "50 likes", |s| s["interactions"]["like"] == 50)
        .await;
    node.signal("TERM");
    for ws in &mut viewers {
        let mut last_ack = 0;
        let end = loop {
            match tokio::time::timeout(support::node::PATIENCE, ws.stream.next_msg())
                .await
                .unwrap()
            {
                Some(m) if m.is_close() => break End::Close(close_code(&m)),
                Some(m) => {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(m.to_text().unwrap_or("")) {
                        if v["type"] == "ack" {
                            last_ack = v["seq"].as_u64().unwrap();
                        }
                    }
                }
                None => break End::NoCloseFrame,
            }
        };
        assert_eq!(end, End::Close(1001));
        assert_eq!(
            last_ack, 10,
            "every like taken before shutdown is acked before the close"
        );
    }
    let status = node.wait();
    assert!(status.success(), "node exited with {status}");
    assert!(node.log_text().contains("stopped"));
}

fn close_code(m: &tokio_tungstenite::tungstenite::Message) -> u16 {
    match m {
        tokio_tungstenite::tungstenite::Message::Close(Some(f)) => u16::from(f.code),
        _ => 1005,
    }
}

/// `StreamExt::next` flattened to the message.
trait NextMsg {
    async fn next_msg(&mut self) -> Option<tokio_tungstenite::tungstenite::Message>;
}

impl<S> NextMsg for S
where
    S: futures_util::Stream<
            Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>,
        > + Unpin,
{
    async fn next_msg(&mut self) -> Option<tokio_tungstenite::tungstenite::Message> {
        use futures_util::StreamExt;
        self.next().await.and_then(|r| r.ok())
    }
}
