//! Reading a server message without a JSON parse, for clients that take many of them: the
//! load tool times every ack and every `stats` frame of tens of thousands of sockets, and
//! a parse per message would make the tool, not the node, the bottleneck. The prefixes
//! hold because the server writes `type` first in `welcome`, `ack` and `stats`; `error` is
//! built through a JSON map, which orders its keys, so its `type` is found anywhere.

/// How a `welcome` message starts.
pub const WELCOME: &str = r#"{"type":"welcome""#;
/// How an `ack` message starts.
pub const ACK: &str = r#"{"type":"ack""#;
/// How a `stats` message starts.
pub const STATS: &str = r#"{"type":"stats""#;
/// What an `error` message holds (last, with its keys in order).
pub const ERROR: &str = r#""type":"error""#;

/// Keys whose integer values clients read with [`number_after`].
pub const SEQ: &str = r#""seq":"#;
pub const AT: &str = r#""at":"#;
pub const VIEWERS: &str = r#""viewers":"#;

/// The type of a server message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Welcome,
    Ack,
    Stats,
    Error,
    Other,
}

/// The type of `text`, checked in the order a busy socket sees them most (acks, then
/// stats frames), the one search through the whole text last.
pub fn kind_of(text: &str) -> Kind {
    if text.starts_with(ACK) {
        Kind::Ack
    } else if text.starts_with(STATS) {
        Kind::Stats
    } else if text.starts_with(WELCOME) {
        Kind::Welcome
    } else if text.contains(ERROR) {
        Kind::Error
    } else {
        Kind::Other
    }
}

/// The integer right after the first `key` (such as [`SEQ`]) in `text`.
pub fn number_after(text: &str, key: &str) -> Option<u64> {
    let i = text.find(key)? + key.len();
    let digits = text[i..].bytes().take_while(u8::is_ascii_digit).count();
    text[i..i + digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{client, server, Frames, Stats, Welcome};

    #[test]
    fn tells_the_messages_the_server_builds_apart() {
        let ack = server::ack(42);
        assert_eq!(kind_of(&ack), Kind::Ack);
        assert_eq!(number_after(&ack, SEQ), Some(42));

        let stats = Stats {
            viewers: 3,
            ..Default::default()
        };
        let frames = Frames::build("c1", 1700, &stats);
        for frame in [&frames.viewer_frame, &frames.operator_frame] {
            assert_eq!(kind_of(frame), Kind::Stats);
            assert_eq!(number_after(frame, AT), Some(1700));
            assert_eq!(number_after(frame, VIEWERS), Some(3));
        }

        let welcome = Welcome {
            campaign: "c1",
            role: "viewer",
            viewer: "v1",
            session: "s1",
            acked_seq: Some(0),
            tick_ms: 1000,
            stats: &frames.viewer_stats,
        };
        assert_eq!(kind_of(&welcome.to_text()), Kind::Welcome);

        for seq in [None, Some(7)] {
            assert_eq!(
                kind_of(&server::error(server::ErrorCode::RateLimited, seq)),
                Kind::Error
            );
        }
        assert_eq!(kind_of(&client::interact("like", 1, Some(1))), Kind::Other);
    }

    #[test]
    fn reads_numbers_without_parsing_json() {
        assert_eq!(number_after(r#"{"type":"ack","seq":42}"#, SEQ), Some(42));
        assert_eq!(
            number_after(r#"{"type":"stats","campaign":"c","at":1700}"#, AT),
            Some(1700)
        );
        assert_eq!(number_after("{}", AT), None);
    }
}
