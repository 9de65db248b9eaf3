//! Sign-up fields: what a campaign asks of the people who register (`registration_fields`),
//! and the check of what a registration sends. Both live beside the campaign type so the
//! HTTP layer and the stores agree on what a valid sign-up is.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{field_error, FieldError};
use crate::protocol::limits::KIND;

/// Fields a campaign may declare.
pub const MAX_FIELDS: usize = 8;
/// Longest value a field may declare (characters).
pub const MAX_FIELD_CHARS: u64 = 256;
/// Names the export uses for its own columns: no field may take them.
pub const RESERVED_NAMES: [&str; 2] = ["viewer", "registered_at"];

/// One declared field: `{"name":"phone","max":32,"required":true}`. `max` (characters,
/// 1–256) defaults to 256, `required` to false.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationField {
    pub name: String,
    #[serde(default = "default_max")]
    pub max: u64,
    #[serde(default)]
    pub required: bool,
}

fn default_max() -> u64 {
    MAX_FIELD_CHARS
}

/// Checks a campaign's declarations: at most 8, names of the [`KIND`] pattern (so they
/// are safe as CSV headers and JSON keys), unique and none of [`RESERVED_NAMES`], `max` in
/// 1..=256.
pub fn check_declarations(fields: &[RegistrationField]) -> Result<(), FieldError> {
    let bad = |m: String| field_error("registration_fields", m);
    if fields.len() > MAX_FIELDS {
        return Err(bad(format!("at most {MAX_FIELDS} registration fields")));
    }
    for (i, f) in fields.iter().enumerate() {
        if !super::is_kind(&f.name) || RESERVED_NAMES.contains(&f.name.as_str()) {
            return Err(bad(format!(
                "field name {:?} must match {KIND} and not be viewer or registered_at",
                f.name
            )));
        }
        if fields[..i].iter().any(|g| g.name == f.name) {
            return Err(bad(format!("field {:?} is declared twice", f.name)));
        }
        if !(1..=MAX_FIELD_CHARS).contains(&f.max) {
            return Err(bad(format!("field {:?}: max must be 1 to {MAX_FIELD_CHARS}", f.name)));
        }
    }
    Ok(())
}

/// A registration's `fields` that failed the campaign's declarations. `field` is what the
/// API's error names: `fields.<name>`, or `fields` for the object as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitError {
    pub field: String,
    pub message: String,
}

/// Checks a registration's `fields` (absent = `{}`) against `declared` and returns them as
/// one JSON object string, keys in declaration order, as the stores keep it. Refused: a
/// field not declared, a value that is not a string or is longer than its `max`, and a
/// required field absent or blank.
pub fn check_submission(
    declared: &[RegistrationField],
    fields: Option<Map<String, Value>>,
) -> Result<String, SubmitError> {
    let mut fields = fields.unwrap_or_default();
    let err = |field: String, message: String| SubmitError { field, message };
    if let Some(name) = fields.keys().find(|k| !declared.iter().any(|d| &d.name == *k)) {
        return Err(err(
            format!("fields.{name}"),
            format!("this campaign asks for no field {name:?}"),
        ));
    }
    let mut out = Vec::with_capacity(declared.len());
    for d in declared {
        let value = match fields.remove(&d.name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                return Err(err(
                    format!("fields.{}", d.name),
                    format!("{} must be a string", d.name),
                ))
            }
        };
        if d.required && value.as_deref().is_none_or(|v| v.trim().is_empty()) {
            return Err(err(format!("fields.{}", d.name), format!("{} is required", d.name)));
        }
        if let Some(v) = value {
            if v.chars().count() as u64 > d.max {
                return Err(err(
                    format!("fields.{}", d.name),
                    format!("{} must be at most {} characters", d.name, d.max),
                ));
            }
            out.push((d.name.as_str(), v));
        }
    }
    // Built by hand: serde_json's map sorts its keys, and the export lists fields in the
    // order the campaign declares them.
    let body: Vec<String> = out
        .iter()
        // unwrap: a string always serialises.
        .map(|(k, v)| {
            format!(
                "{}:{}",
                serde_json::to_string(k).unwrap(),
                serde_json::to_string(v).unwrap()
            )
        })
        .collect();
    Ok(format!("{{{}}}", body.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decl(name: &str, max: u64, required: bool) -> RegistrationField {
        RegistrationField {
            name: name.into(),
            max,
            required,
        }
    }

    fn fields(v: Value) -> Option<Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    #[test]
    fn declarations_are_bounded_named_and_unique() {
        assert!(check_declarations(&[decl("phone", 32, true), decl("city_2", 256, false)]).is_ok());
        for bad in [
            vec![decl("Phone", 32, false)],
            vec![decl("2fa", 32, false)],
            vec![decl("viewer", 32, false)],
            vec![decl("registered_at", 32, false)],
            vec![decl("a", 0, false)],
            vec![decl("a", 257, false)],
            vec![decl("a", 8, false), decl("a", 9, false)],
            (0..9).map(|i| decl(&format!("f{i}"), 8, false)).collect(),
        ] {
            assert_eq!(
                check_declarations(&bad).unwrap_err().field,
                "registration_fields",
                "{bad:?}"
            );
        }
        let parsed: RegistrationField = serde_json::from_value(json!({"name": "phone"})).unwrap();
        assert_eq!(parsed, decl("phone", 256, false));
        assert!(serde_json::from_value::<RegistrationField>(json!({"name": "p", "len": 3})).is_err());
    }

    #[test]
    fn submissions_name_the_offending_field() {
        let d = [decl("phone", 5, true), decl("city", 10, false)];
        let e = |v: Value| check_submission(&d, fields(v)).unwrap_err().field;
        assert_eq!(e(json!({})), "fields.phone");
        assert_eq!(e(json!({"phone": "  "})), "fields.phone");
        assert_eq!(e(json!({"phone": 12345})), "fields.phone");
        assert_eq!(e(json!({"phone": "123456"})), "fields.phone");
        assert_eq!(e(json!({"phone": "1", "email": "x"})), "fields.email");
        assert_eq!(e(json!({"phone": "1", "city": ["x"]})), "fields.city");
        assert_eq!(check_submission(&d, None).unwrap_err().field, "fields.phone");
        // Characters, not bytes; declaration order, not the sender's.
        assert_eq!(
            check_submission(&d, fields(json!({"city": "北京", "phone": "12345"}))).unwrap(),
            r#"{"phone":"12345","city":"北京"}"#
        );
        assert_eq!(
            check_submission(&d, fields(json!({"phone": "1"}))).unwrap(),
            r#"{"phone":"1"}"#
        );
        assert_eq!(check_submission(&[], None).unwrap(), "{}");
        assert_eq!(
            check_submission(&[], fields(json!({"x": "1"}))).unwrap_err().field,
            "fields.x"
        );
    }
}
