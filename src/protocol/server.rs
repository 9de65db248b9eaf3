//! Server → client: `welcome`, `ack` and `error` (the `stats` message is in
//! [`super::stats`], built once per tick for every socket).

use super::limits::max_count;

/// The first message on every socket.
#[derive(Debug)]
pub struct Welcome<'a> {
    pub campaign: &'a str,
    /// `viewer` or `operator`.
    pub role: &'a str,
    pub viewer: &'a str,
    pub session: &'a str,
    /// Highest seq the store holds for the session: resend everything above it. `None`
    /// (JSON `null`, protocol 2 only) while the session's claim is pending in a store
    /// outage: an `ack` with the stored value follows once it lands.
    pub acked_seq: Option<u64>,
    pub tick_ms: u64,
    /// The latest stats object, already JSON (the shape of a `stats` message without its
    /// `type`): it is encoded once per tick, not once per connect.
    pub stats: &'a str,
}

impl Welcome<'_> {
    /// `{"type":"welcome",...}`
    pub fn to_text(&self) -> String {
        format!(
            r#"{{"type":"welcome","campaign":{},"role":{},"viewer":{},"session":{},"acked_seq":{},"tick_ms":{},"stats":{}}}"#,
            json_str(self.campaign),
            json_str(self.role),
            json_str(self.viewer),
            json_str(self.session),
            AckedSeq(self.acked_seq),
            self.tick_ms,
            self.stats
        )
    }
}

/// `acked_seq` as JSON: a number, or `null`.
struct AckedSeq(Option<u64>);

impl std::fmt::Display for AckedSeq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("null"),
        }
    }
}

fn json_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// `{"type":"ack","seq":N}`: cumulative, every seq ≤ N is durably in the store.
pub fn ack(seq: u64) -> String {
    format!(r#"{{"type":"ack","seq":{seq}}}"#)
}

/// The `code` of an `error` message (docs/protocol.md, the table under `error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadJson,
    UnknownType,
    /// `kind` missing.
    MissingKind,
    /// `kind` not one of the campaign's kinds.
    UnknownKind,
    BadCount,
    BadSeq,
    SeqGap,
    RateLimited,
    StoreUnavailable,
    NotAViewer,
    /// A `watch` naming a unit the campaign's org lacks (or a campaign without one).
    UnknownUnit,
}

impl ErrorCode {
    /// Every code on the wire once (`MissingKind` is sent as `unknown_kind`), in the order
    /// of the docs' table.
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::BadJson,
        ErrorCode::UnknownType,
        ErrorCode::UnknownKind,
        ErrorCode::BadCount,
        ErrorCode::BadSeq,
        ErrorCode::SeqGap,
        ErrorCode::RateLimited,
        ErrorCode::StoreUnavailable,
        ErrorCode::NotAViewer,
        ErrorCode::UnknownUnit,
    ];

    pub fn code(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::MissingKind | ErrorCode::UnknownKind => "unknown_kind",
            ErrorCode::BadCount => "bad_count",
            ErrorCode::BadSeq => "bad_seq",
            ErrorCode::SeqGap => "seq_gap",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::NotAViewer => "not_a_viewer",
            ErrorCode::UnknownUnit => "unknown_unit",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "message is not a JSON object",
            ErrorCode::UnknownType => "unknown message type (expected \"interact\")",
            ErrorCode::MissingKind => "kind is required",
            ErrorCode::UnknownKind => "this campaign does not count that kind",
            ErrorCode::BadCount => concat!("count must be an integer from 1 to ", max_count!()),
            ErrorCode::BadSeq => "seq must be a positive integer",
            ErrorCode::SeqGap => "seq must be the previous seq + 1",
            ErrorCode::RateLimited => "too many interactions; slow down",
            ErrorCode::StoreUnavailable => "the store is unreachable and the buffer is full; retry later",
            ErrorCode::NotAViewer => "operator watchers cannot interact",
            ErrorCode::UnknownUnit => "no such unit in the campaign's organisation",
        }
    }

    /// Whether the refusal counts towards the 1008 close for bad messages (malformed
    /// input does; limits and the store's state do not).
    pub fn is_bad_input(self) -> bool {
        !matches!(
            self,
            ErrorCode::RateLimited | ErrorCode::StoreUnavailable | ErrorCode::NotAViewer | ErrorCode::UnknownUnit
        )
    }
}

/// `{"type":"error","code":..,"message":..,"seq"?:N}`: `seq` names the refused message when
/// it had one, so a client can resend exactly that message (it was not taken).
pub fn error(code: ErrorCode, seq: Option<u64>) -> String {
    let mut v = serde_json::json!({"type": "error", "code": code.code(), "message": code.message()});
    if let Some(seq) = seq {
        v["seq"] = seq.into();
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welcome_carries_the_stats_object() {
        let w = Welcome {
            campaign: "launch",
            role: "viewer",
            viewer: "v\"1",
            session: "s1",
            acked_seq: Some(4),
            tick_ms: 1000,
            stats: r#"{"viewers":2}"#,
        };
        let v: serde_json::Value = serde_json::from_str(&w.to_text()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"welcome","campaign":"launch","role":"viewer","viewer":"v\"1",
                "session":"s1","acked_seq":4,"tick_ms":1000,"stats":{"viewers":2}})
        );
        let pending = Welcome { acked_seq: None, ..w };
        let v: serde_json::Value = serde_json::from_str(&pending.to_text()).unwrap();
        assert!(v["acked_seq"].is_null() && v.get("acked_seq").is_some(), "{v}");
    }

    #[test]
    fn errors_echo_the_seq() {
        let v: serde_json::Value = serde_json::from_str(&error(ErrorCode::SeqGap, Some(3))).unwrap();
        assert_eq!(v["code"], "seq_gap");
        assert_eq!(v["seq"], 3);
        assert!(serde_json::from_str::<serde_json::Value>(&error(ErrorCode::BadJson, None)).unwrap()["seq"].is_null());
    }

    #[test]
    fn bad_count_quotes_the_limit() {
        let expected = format!("count must be an integer from 1 to {}", super::super::MAX_COUNT);
        assert_eq!(ErrorCode::BadCount.message(), expected);
    }
}
