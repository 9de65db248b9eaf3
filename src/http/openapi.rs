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
