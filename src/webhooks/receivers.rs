//! The deployment's webhook receivers as the operator edits them (`GET/PUT
//! /api/v1/webhooks`): ids are the server's, a secret is written and never read back, and
//! `--webhook-url`/`--webhook-secret` only seed a store that never had the setting.

use std::borrow::Cow;

use rand::Rng;
use serde_json::{json, Map, Value};

use crate::store::outbox::{Receiver, TYPES};

/// Most receivers a deployment has: each one costs a lease and a POST per event.
pub const MAX_RECEIVERS: usize = 16;
/// Shortest secret accepted (as `--webhook-secret`).
pub const MIN_SECRET: usize = 16;
/// Longest secret and URL accepted.
const MAX_TEXT: usize = 2048;

/// A fresh server id: `rcv_` and 16 hex digits.
pub fn new_id() -> String {
    format!("rcv_{:016x}", rand::rng().random::<u64>())
}

/// The receivers `--webhook-url` and `--webhook-secret` name: every URL gets every type.
pub fn from_flags(urls: &[String], secret: &str) -> Vec<Receiver> {
    urls.iter()
        .map(|url| Receiver {
            id: new_id(),
            url: url.clone(),
            types: None,
            secret: secret.to_owned(),
        })
        .collect()
}

/// What `GET /api/v1/webhooks` shows: everything but the secret.
pub fn public(receivers: &[Receiver]) -> Value {
    let list: Vec<Value> = receivers
        .iter()
        .map(|r| {
            let mut v = json!({"id": r.id, "url": r.url});
            if let Some(types) = &r.types {
                v["types"] = json!(types);
            }
            v
        })
        .collect();
    json!({ "receivers": list })
}

/// A rejected `PUT`: the field (`receivers[2].url`) and why.
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid {
    pub field: Cow<'static, str>,
    pub message: String,
}

fn invalid(field: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// The receivers a `PUT` body (`{"receivers":[...]}`) sets, given those stored: an entry
/// with an `id` edits that receiver (keeping its secret unless it gives one), one without
/// is new (and needs a secret); stored receivers not listed are removed.
pub fn merge(body: &Map<String, Value>, stored: &[Receiver]) -> Result<Vec<Receiver>, Invalid> {
    if let Some(k) = body.keys().find(|k| *k != "receivers") {
        return Err(invalid("receivers", format!("unknown field {k:?}")));
    }
    let Some(Value::Array(items)) = body.get("receivers") else {
        return Err(invalid("receivers", "receivers must be an array"));
    };
    if items.len() > MAX_RECEIVERS {
        return Err(invalid("receivers", format!("at most {MAX_RECEIVERS} receivers")));
    }
    let mut out: Vec<Receiver> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let r = one(i, item, stored)?;
        if out.iter().any(|o| o.id == r.id) {
            return Err(invalid(format!("receivers[{i}].id"), "listed twice"));
        }
        out.push(r);
    }
    Ok(out)
}

fn one(i: usize, item: &Value, stored: &[Receiver]) -> Result<Receiver, Invalid> {
    let field = |name: &str| format!("receivers[{i}].{name}");
    let Value::Object(item) = item else {
        return Err(invalid(format!("receivers[{i}]"), "a receiver is an object"));
    };
    if let Some(k) = item
        .keys()
        .find(|k| !["id", "url", "types", "secret"].contains(&k.as_str()))
    {
        return Err(invalid(format!("receivers[{i}]"), format!("unknown field {k:?}")));
    }
    let old = match item.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => match stored.iter().find(|r| &r.id == id) {
            Some(r) => Some(r),
            None => return Err(invalid(field("id"), "no receiver has this id (ids are the server's)")),
        },
        Some(_) => return Err(invalid(field("id"), "id must be a string")),
    };
    let url = match item.get("url") {
        Some(Value::String(u)) if is_http_url(u) => u.clone(),
        _ => return Err(invalid(field("url"), "url must be an http(s) URL")),
    };
    let types = match item.get("types") {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) if !list.is_empty() => {
            let mut types = Vec::with_capacity(list.len());
            for t in list {
                match t.as_str().filter(|t| TYPES.contains(t)) {
                    Some(t) if !types.iter().any(|k: &String| k == t) => types.push(t.to_owned()),
                    Some(_) => {}
                    None => {
                        return Err(invalid(
                            field("types"),
                            format!("types are some of {}", TYPES.join(", ")),
                        ))
                    }
                }
            }
            Some(types)
        }
        Some(_) => {
            return Err(invalid(
                field("types"),
                "types must be a non-empty array of event types",
            ))
        }
    };
    let secret = match (item.get("secret"), old) {
        (Some(Value::String(s)), _) if (MIN_SECRET..=MAX_TEXT).contains(&s.chars().count()) => s.clone(),
        (None | Some(Value::Null), Some(old)) => old.secret.clone(),
        (None | Some(Value::Null), None) => return Err(invalid(field("secret"), "a new receiver needs a secret")),
        _ => {
            return Err(invalid(
                field("secret"),
                format!("secret must be {MIN_SECRET} to {MAX_TEXT} characters"),
            ))
        }
    };
    Ok(Receiver {
        id: old.map_or_else(new_id, |o| o.id.clone()),
        url,
        types,
        secret,
    })
}

/// An absolute `http://` or `https://` URL with a host, as a receiver's.
pub fn is_http_url(u: &str) -> bool {
    // A URI is ASCII (RFC 3986): an internationalised host is given in its punycode form,
    // so what is stored, shown and requested is the same text.
    u.len() <= MAX_TEXT
        && u.is_ascii()
        && !u.bytes().any(|b| b.is_ascii_control() || b == b' ')
        && reqwest::Url::parse(u)
            .is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host_str().is_some_and(|h| !h.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_an_ascii_http_uri_with_a_host() {
        assert!(is_http_url("https://crm.example/hooks?x=1"));
        assert!(is_http_url("http://xn--1ca.example/"));
        for bad in [
            "https://\u{cf}",
            "ftp://a.example",
            "https://",
            "https://a b",
            "a.example",
        ] {
            assert!(!is_http_url(bad), "{bad}");
        }
    }

    fn put(v: Value, stored: &[Receiver]) -> Result<Vec<Receiver>, Invalid> {
        merge(v.as_object().unwrap(), stored)
    }

    #[test]
    fn a_new_receiver_gets_an_id_and_an_edit_keeps_the_secret() {
        let new = put(
            json!({"receivers": [{"url": "https://a.example/h", "secret": "0123456789abcdef"}]}),
            &[],
        )
        .unwrap();
        assert!(new[0].id.starts_with("rcv_") && new[0].id.len() == 20);
        let edited = put(
            json!({"receivers": [{"id": new[0].id, "url": "https://b.example/h", "types": ["campaign.ended"]}]}),
            &new,
        )
        .unwrap();
        assert_eq!(edited[0].id, new[0].id);
        assert_eq!(edited[0].secret, "0123456789abcdef");
        assert_eq!(edited[0].types.as_deref(), Some(&["campaign.ended".to_owned()][..]));
        let shown = public(&edited).to_string();
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }

    #[test]
    fn bad_receivers_name_their_field() {
        let cases = [
            (json!({"receivers": {}}), "receivers"),
            (json!({"receivers": [], "x": 1}), "receivers"),
            (
                json!({"receivers": [{"url": "ftp://a", "secret": "0123456789abcdef"}]}),
                "receivers[0].url",
            ),
            (
                json!({"receivers": [{"url": "https://a.example"}]}),
                "receivers[0].secret",
            ),
            (
                json!({"receivers": [{"url": "https://a.example", "secret": "short"}]}),
                "receivers[0].secret",
            ),
            (
                json!({"receivers": [{"id": "rcv_x", "url": "https://a.example"}]}),
                "receivers[0].id",
            ),
            (
                json!({"receivers": [{"url": "https://a.example", "secret": "0123456789abcdef", "types": ["nope"]}]}),
                "receivers[0].types",
            ),
            (
                json!({"receivers": [{"url": "https://a.example", "secret": "0123456789abcdef", "types": []}]}),
                "receivers[0].types",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(put(body.clone(), &[]).unwrap_err().field, field, "{body}");
        }
    }
}
