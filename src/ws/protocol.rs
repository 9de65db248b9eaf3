//! The viewer socket's messages: parsing what clients send (borrowing from the frame, no
//! allocation for the common case) and formatting the small messages the server sends.
//! The big `stats` frames are built once per tick in `broadcast::frame`.

use std::borrow::Cow;

use serde::Deserialize;

/// Largest `count` one `interact` message may carry.
pub const MAX_COUNT: u64 = 100;

/// A client message as received.
#[derive(Debug, Deserialize)]
struct Raw<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    count: Option<serde_json::Value>,
    seq: Option<serde_json::Value>,
}

/// A valid `interact` message.
#[derive(Debug, PartialEq, Eq)]
pub struct Interact<'a> {
    pub kind: Cow<'a, str>,
    pub count: u64,
    pub seq: Option<u64>,
}

/// Why a message was refused; the `code` goes back to the client in an `error` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadMessage {
    BadJson,
    UnknownType,
    BadCount,
    BadSeq,
    MissingKind,
}

impl BadMessage {
    pub fn code(self) -> &'static str {
        match self {
            BadMessage::BadJson => "bad_json",
            BadMessage::UnknownType => "unknown_type",
            BadMessage::BadCount => "bad_count",
            BadMessage::BadSeq => "bad_seq",
            BadMessage::MissingKind => "unknown_kind",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            BadMessage::BadJson => "message is not a JSON object",
            BadMessage::UnknownType => "unknown message type (expected \"interact\")",
            BadMessage::BadCount => "count must be an integer from 1 to 100",
            BadMessage::BadSeq => "seq must be a positive integer",
            BadMessage::MissingKind => "kind is required",
        }
    }
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<Interact<'_>, BadMessage> {
    let raw: Raw<'_> = serde_json::from_str(text).map_err(|_| BadMessage::BadJson)?;
    if raw.ty.as_deref() != Some("interact") {
        return Err(BadMessage::UnknownType);
    }
    let kind = raw.kind.ok_or(BadMessage::MissingKind)?;
    let count = match raw.count {
        None => 1,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_COUNT).contains(&n) => n,
            _ => return Err(BadMessage::BadCount),
        },
    };
    let seq = match raw.seq {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Some(n),
            _ => return Err(BadMessage::BadSeq),
        },
    };
    Ok(Interact { kind, count, seq })
}

/// `{"type":"ack","seq":N}`
pub fn ack(seq: u64) -> String {
    format!(r#"{{"type":"ack","seq":{seq}}}"#)
}

/// `{"type":"error","code":..,"message":..,"seq"?:N}`: `seq` names the refused message when
/// it had one, so a client can resend exactly that message (it was not taken).
pub fn error(code: &str, message: &str, seq: Option<u64>) -> String {
    let mut v = serde_json::json!({"type": "error", "code": code, "message": message});
    if let Some(seq) = seq {
        v["seq"] = seq.into();
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_interactions() {
        assert_eq!(
            parse(r#"{"type":"interact","kind":"like"}"#),
            Ok(Interact {
                kind: "like".into(),
                count: 1,
                seq: None
            })
        );
        assert_eq!(
            parse(r#"{"type":"interact","kind":"cheer","count":100,"seq":7}"#),
            Ok(Interact {
                kind: "cheer".into(),
                count: 100,
                seq: Some(7)
            })
        );
    }

    #[test]
    fn refuses_bad_messages() {
        assert_eq!(parse("{"), Err(BadMessage::BadJson));
        assert_eq!(parse("[1]"), Err(BadMessage::BadJson));
        assert_eq!(parse(r#"{"type":"hello"}"#), Err(BadMessage::UnknownType));
        assert_eq!(parse(r#"{"type":"interact"}"#), Err(BadMessage::MissingKind));
        for c in ["0", "101", "1.5", "\"3\"", "-1"] {
            let m = format!(r#"{{"type":"interact","kind":"like","count":{c}}}"#);
            assert_eq!(parse(&m), Err(BadMessage::BadCount), "{m}");
        }
        assert_eq!(
            parse(r#"{"type":"interact","kind":"like","seq":0}"#),
            Err(BadMessage::BadSeq)
        );
    }
}
