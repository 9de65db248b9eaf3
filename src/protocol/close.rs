//! Close codes of the viewer socket (docs/protocol.md, "Close codes"), with the reason text
//! sent in the close frame.

use super::limits::max_message_bytes;

/// Answer to the client's own close.
pub const NORMAL: u16 = 1000;
/// The node is shutting down (after a last flush, so everything taken so far is acked).
pub const GOING_AWAY: u16 = 1001;
/// Too many bad messages, or rate limited for too long.
pub const POLICY: u16 = 1008;
/// A message over [`super::limits::MAX_MESSAGE_BYTES`].
pub const TOO_BIG: u16 = 1009;
/// The campaign ended.
pub const ENDED: u16 = 4000;
/// The session was resumed on another socket; reconnecting is pointless while that one lives.
pub const RESUMED_ELSEWHERE: u16 = 4001;

/// Every close code, by the name the SDK gives it, in the order of the docs' table.
pub const CODES: [(&str, u16); 6] = [
    ("NORMAL", NORMAL),
    ("GOING_AWAY", GOING_AWAY),
    ("POLICY", POLICY),
    ("TOO_BIG", TOO_BIG),
    ("ENDED", ENDED),
    ("RESUMED_ELSEWHERE", RESUMED_ELSEWHERE),
];

/// A close the server sends: code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: &'static str,
}

impl Close {
    pub const BYE: Close = Close {
        code: NORMAL,
        reason: "bye",
    };
    pub const SHUTTING_DOWN: Close = Close {
        code: GOING_AWAY,
        reason: "server shutting down",
    };
    /// The campaign's tally left this node while sockets still listened (never expected).
    pub const CAMPAIGN_CLOSED_HERE: Close = Close {
        code: GOING_AWAY,
        reason: "campaign closed on this node",
    };
    pub const TOO_MANY_BAD: Close = Close {
        code: POLICY,
        reason: "too many bad messages",
    };
    pub const RATE_LIMITED: Close = Close {
        code: POLICY,
        reason: "rate limited for too long",
    };
    pub const TOO_BIG: Close = Close {
        code: TOO_BIG,
        reason: concat!("message over ", max_message_bytes!(), " bytes"),
    };
    pub const ENDED: Close = Close {
        code: ENDED,
        reason: "campaign ended",
    };
    pub const RESUMED_ELSEWHERE: Close = Close {
        code: RESUMED_ELSEWHERE,
        reason: "session resumed on another socket",
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_too_big_reason_quotes_the_limit() {
        assert_eq!(Close::TOO_BIG.reason, "message over 4096 bytes");
        assert_eq!(
            format!("message over {} bytes", super::super::MAX_MESSAGE_BYTES),
            Close::TOO_BIG.reason
        );
    }
}
