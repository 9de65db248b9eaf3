//! Client → server: the `interact` message, parsed borrowing from the frame (no
//! allocation for the common case), and built by clients such as the load tool.

use std::borrow::Cow;

use serde::Deserialize;

pub use super::limits::MAX_COUNT;

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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// A `watch` whose `unit` is neither null nor a unit code.
    BadUnit,
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<Interact<'_>, BadMessage> {
    match parse_canonical(text) {
        Some(m) => Ok(m),
        None => parse_json(text),
    }
}

/// The fast path for the one shape clients send in a like-storm,
/// `{"type":"interact","kind":"K","count":N,"seq":M}` (count and seq optional, in that
/// order, no whitespace, a plain kind), read without a JSON parser: the criterion bench
/// measured the general parse at ~370 ns per message, a third of a core at 1,000,000
/// messages/s. Anything else, including a count or seq out of range, returns `None` and
/// goes through [`parse_json`], so both paths give the same answer for every input.
fn parse_canonical(text: &str) -> Option<Interact<'_>> {
    let rest = text.strip_prefix(r#"{"type":"interact","kind":""#)?;
    let end = rest.find('"')?;
    let kind = &rest[..end];
    if kind.is_empty()
        || !kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return None;
    }
    let mut rest = &rest[end + 1..];
    let mut field = |name: &str| -> Option<Option<u64>> {
        let Some(after) = rest.strip_prefix(name) else {
            return Some(None);
        };
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        // No leading zeros (invalid JSON) and no overflow: those go the slow way.
        if digits == 0 || digits > 19 || (digits > 1 && after.starts_with('0')) {
            return None;
        }
        let n: u64 = after[..digits].parse().ok()?;
        rest = &after[digits..];
        Some(Some(n))
    };
    let count = field(r#","count":"#)?;
    let seq = field(r#","seq":"#)?;
    if rest != "}" {
        return None;
    }
    let count = count.unwrap_or(1);
    if !(1..=MAX_COUNT).contains(&count) || seq == Some(0) {
        return None;
    }
    Some(Interact {
        kind: Cow::Borrowed(kind),
        count,
        seq,
    })
}

/// The general parse: any JSON object, fields in any order.
fn parse_json(text: &str) -> Result<Interact<'_>, BadMessage> {
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

/// Why a message was refused, as the `error` code the client gets back.
impl From<BadMessage> for super::server::ErrorCode {
    fn from(bad: BadMessage) -> Self {
        use super::server::ErrorCode;
        match bad {
            BadMessage::BadJson => ErrorCode::BadJson,
            BadMessage::UnknownType => ErrorCode::UnknownType,
            BadMessage::BadCount => ErrorCode::BadCount,
            BadMessage::BadSeq => ErrorCode::BadSeq,
            BadMessage::MissingKind => ErrorCode::MissingKind,
            BadMessage::BadUnit => ErrorCode::UnknownUnit,
        }
    }
}

/// An operator's `{"type":"watch","unit":CODE|null}`: `Some(Ok(unit))` (`None`: the top
/// level), `Some(Err)` for a watch whose unit is no code, `None` for any other message.
pub fn parse_watch(text: &str) -> Option<Result<Option<String>, BadMessage>> {
    #[derive(Deserialize)]
    struct Watch {
        #[serde(rename = "type")]
        ty: String,
        #[serde(default)]
        unit: serde_json::Value,
    }
    let w: Watch = serde_json::from_str(text).ok()?;
    if w.ty != "watch" {
        return None;
    }
    Some(match w.unit {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(u) if super::limits::UNIT_CODE.matches(&u) => Ok(Some(u)),
        _ => Err(BadMessage::BadUnit),
    })
}

/// `{"type":"interact","kind":K,"count":N,"seq":M}` in the canonical shape the server's
/// fast path reads (`seq` omitted when `None`). `kind` must be a campaign kind
/// (`^[a-z][a-z0-9_]{0,31}$`), which needs no JSON escaping.
pub fn interact(kind: &str, count: u64, seq: Option<u64>) -> String {
    match seq {
        Some(seq) => format!(r#"{{"type":"interact","kind":"{kind}","count":{count},"seq":{seq}}}"#),
        None => format!(r#"{{"type":"interact","kind":"{kind}","count":{count}}}"#),
    }
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
    fn the_fast_path_agrees_with_the_json_parse() {
        let cases = [
            r#"{"type":"interact","kind":"like"}"#,
            r#"{"type":"interact","kind":"like","count":1,"seq":1}"#,
            r#"{"type":"interact","kind":"cheer","count":100,"seq":18446744073709551615}"#,
            r#"{"type":"interact","kind":"like","seq":42}"#,
            r#"{"type":"interact","kind":"like","count":0}"#,
            r#"{"type":"interact","kind":"like","count":101}"#,
            r#"{"type":"interact","kind":"like","count":01}"#,
            r#"{"type":"interact","kind":"like","seq":0}"#,
            r#"{"type":"interact","kind":"like","seq":18446744073709551616}"#,
            r#"{"type":"interact","kind":"like","count":1,"seq":1} "#,
            r#"{"type":"interact","kind":"like","count":1,"seq":1,"x":2}"#,
            r#"{"type":"interact","kind":"li"ke","count":1}"#,
            r#"{"type":"interact","kind":"","count":1}"#,
            r#"{"type":"interact","kind":"like","seq":1,"count":2}"#,
            r#"{"type":"interact","kind":"like","count":1.5}"#,
        ];
        for c in cases {
            let json = parse_json(c);
            if let Some(fast) = parse_canonical(c) {
                assert_eq!(Ok(fast), json, "{c}");
            }
            assert_eq!(parse(c), json, "{c}");
        }
        assert!(parse_canonical(r#"{"type":"interact","kind":"like","count":3,"seq":9}"#).is_some());
    }

    #[test]
    fn built_messages_take_the_fast_path() {
        let m = interact("like", 3, Some(9));
        assert_eq!(
            parse_canonical(&m),
            Some(Interact {
                kind: "like".into(),
                count: 3,
                seq: Some(9)
            })
        );
        let m = interact("cheer", 1, None);
        assert_eq!(
            parse_canonical(&m),
            Some(Interact {
                kind: "cheer".into(),
                count: 1,
                seq: None
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

    mod properties {
        //! The fast path must agree with the full JSON parse on every input, not only on the
        //! hand-picked ones above: it is the parse a like-storm goes through.
        use super::super::*;
        use proptest::prelude::*;

        /// Numbers as a client might write them: plain, zero-padded, huge, negative,
        /// fractional or in exponent form.
        fn number() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => prop::sample::select(vec!["0", "1", "2", "99", "100", "101", "01", "00",
                    "18446744073709551615", "18446744073709551616"]).prop_map(str::to_owned),
                2 => (0u64..200).prop_map(|n| n.to_string()),
                1 => any::<u64>().prop_map(|n| n.to_string()),
                1 => "[0-9]{1,22}",
                1 => prop::sample::select(vec!["-1", "1.5", "1e2", "\"3\"", "null"]).prop_map(str::to_owned),
            ]
        }

        /// Messages shaped like the canonical one, with every part varied.
        fn near_canonical() -> impl Strategy<Value = String> {
            (
                prop_oneof![4 => "[a-z][a-z0-9_-]{0,11}", 1 => r#"[a-z0-9_\-"\\é ]{0,12}"#],
                proptest::option::of(number()),
                proptest::option::of(number()),
                prop_oneof![6 => Just("}"), 1 => Just("} "), 1 => Just(r#","x":1}"#), 1 => Just(""), 1 => Just("}}")],
                any::<bool>(),
            )
                .prop_map(|(kind, count, seq, tail, swap)| {
                    let mut s = format!(r#"{{"type":"interact","kind":"{kind}""#);
                    let mut fields = vec![];
                    if let Some(c) = count {
                        fields.push(format!(r#","count":{c}"#));
                    }
                    if let Some(q) = seq {
                        fields.push(format!(r#","seq":{q}"#));
                    }
                    if swap {
                        fields.reverse();
                    }
                    s.extend(fields);
                    s.push_str(tail);
                    s
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4096))]

            #[test]
            fn fast_path_agrees_with_json(text in near_canonical()) {
                let json = parse_json(&text);
                if let Some(fast) = parse_canonical(&text) {
                    prop_assert_eq!(Ok(fast), json.clone(), "{}", text);
                }
                prop_assert_eq!(parse(&text), json, "{}", text);
            }

            #[test]
            fn any_text_parses_the_same_both_ways(text in ".{0,80}") {
                let json = parse_json(&text);
                if let Some(fast) = parse_canonical(&text) {
                    prop_assert_eq!(Ok(fast), json.clone(), "{}", text);
                }
            }
        }
    }
}
