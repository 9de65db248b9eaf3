//! Close codes of the viewer socket (docs/protocol.md, "Close codes"), with the reason text
//! sent in the close frame.

/// Answer to the client's own close.
pub const NORMAL: u16 = 1000;
/// The node is shutting down (after a last flush, so everything taken so far is acked).
pub const GOING_AWAY: u16 = 1001;
/// Too many bad messages, or rate limited for too long.
pub const POLICY: u16 = 1008;
/// A message over [`super::MAX_MESSAGE_BYTES`].
pub const TOO_BIG: u16 = 1009;
/// The campaign ended.
pub const ENDED: u16 = 4000;
/// The session was resumed on another socket; reconnecting is pointless while that one lives.
pub const RESUMED_ELSEWHERE: u16 = 4001;

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
        reason: "message over 4096 bytes",
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
