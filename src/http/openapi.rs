//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every HTTP route and every answer
//! it can give. It is written by hand (`openapi.json` beside this file) rather than derived
//! from annotations, so it reads as one reviewable contract; it is kept true by a test that
//! compares it with the router, and by the schemathesis run in the test command
//! (scripts/fuzz-api.sh), which fuzzes a live node from it.

use actix_web::HttpResponse;

/// The document, embedded in the binary.
pub const DOCUMENT: &str = include_str!("openapi.json");

pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("cache-control", "no-cache"))
        .body(DOCUMENT)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::DOCUMENT;

    /// `(METHOD, path)` of every `.route("…", web::method()…)` in a routes source, with
    /// `web::scope("…")` prefixes applied (a scope's routes sit between its line and the
    /// line that closes it, `)`).
    fn routes_in(source: &str) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        let mut scope: Option<String> = None;
        for line in source.lines().map(str::trim) {
            if let Some(rest) = line.split("web::scope(\"").nth(1) {
                scope = rest.split('"').next().map(str::to_owned);
                continue;
            }
            if scope.is_some() && (line == ")" || line.starts_with(")")) {
                scope = None;
            }
            let Some(rest) = line.split(".route(\"").nth(1) else {
                continue;
            };
            let path = rest.split('"').next().unwrap_or_default();
            // `web::get()`, or `web::method(Method::OPTIONS)` for methods without a shorthand.
            let method = rest
                .split("web::")
                .nth(1)
                .and_then(|m| match m.strip_prefix("method(Method::") {
                    Some(named) => named.split(')').next(),
                    None => m.split("()").next(),
                })
                .unwrap_or_default();
            let full = match &scope {
                Some(prefix) => format!("{prefix}{path}"),
                None => path.to_owned(),
            };
            out.insert((method.to_uppercase(), full));
        }
        out
    }

    fn documented() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in ["get", "post", "put", "patch", "delete", "options"] {
                if item.get(method).is_some() {
                    out.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn the_document_lists_exactly_the_routes_of_the_router() {
        let mut routed = routes_in(include_str!("mod.rs"));
        routed.extend(routes_in(include_str!("pages.rs")));
        assert!(routed.len() > 15, "the route reader found {routed:?}");
        assert_eq!(documented(), routed);
    }

    #[test]
    fn every_operation_answers_json_errors_from_one_schema() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let Some(responses) = op.get("responses").and_then(|r| r.as_object()) else {
                    continue;
                };
                for (status, r) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        let text = r.to_string();
                        assert!(
                            text.contains("#/components/responses/") || text.contains("#/components/schemas/"),
                            "{method} {path} {status} does not use the shared error shape"
                        );
                    }
                }
            }
        }
    }
}
