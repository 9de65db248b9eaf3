//! Cross-origin answers for what a brand's own page calls from its origin: the public GET
//! routes and `POST …/registrations` (with its preflight). Operator routes get none, so a
//! page elsewhere cannot read them even with a token; sockets check `Origin` themselves
//! (`ws::admission`), and our own pages keep their strict CSP (`pages`).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpRequest, HttpResponse, Route};

use super::Api;

/// How long a browser may reuse a preflight answer: ten minutes spares a sign-up form one
/// round trip per submission, and a change of `--allowed-origins` reaches browsers soon.
const PREFLIGHT_MAX_AGE_S: &str = "600";

/// `--allowed-origins` as the public routes read it: empty, any origin (`*`); else only the
/// listed ones, each answered with itself.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins(Vec<String>);

impl AllowedOrigins {
    pub fn new(origins: Vec<String>) -> Self {
        Self(origins)
    }

    /// Adds the CORS answer for a request from `origin` to `headers`: `*` when any origin
    /// is allowed, the origin itself when listed (with `Vary: Origin`, since the answer
    /// then depends on it), nothing for another origin (the browser then withholds the
    /// answer from the page).
    fn answer(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        if self.0.is_empty() {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
            return;
        }
        headers.append(header::VARY, HeaderValue::from_static("origin"));
        if let Some(origin) = origin.filter(|o| self.0.iter().any(|a| a.as_bytes() == o.as_bytes())) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        }
    }
}

/// A public route (`web::get().to(…)`) that answers other origins, errors included.
pub fn public(route: Route) -> Route {
    route.wrap(from_fn(cross_origin))
}

async fn cross_origin(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let allowed = req.app_data::<web::Data<Api>>().map(|api| api.allowed_origins.clone());
    let mut res = next.call(req).await?;
    if let Some(allowed) = allowed {
        allowed.answer(origin.as_ref(), res.headers_mut());
    }
    Ok(res)
}

/// `OPTIONS /api/v1/campaigns/{id}/registrations`: the preflight of a JSON `POST` from
/// another origin. 204 whatever the origin; only an allowed one gets the CORS headers.
pub async fn preflight(req: HttpRequest, api: web::Data<Api>) -> HttpResponse {
    let mut res = HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "POST"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, "content-type"))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE_S))
        .finish();
    api.allowed_origins
        .answer(req.headers().get(header::ORIGIN), res.headers_mut());
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(allowed: &[&str], origin: Option<&'static str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let allowed = AllowedOrigins::new(allowed.iter().map(|s| s.to_string()).collect());
        allowed.answer(origin.map(HeaderValue::from_static).as_ref(), &mut headers);
        headers
    }

    #[test]
    fn any_origin_gets_a_star_and_a_listed_one_gets_itself() {
        let any = answer(&[], Some("https://brand.example"));
        assert_eq!(any.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(), "*");
        assert!(any.get(header::VARY).is_none());
        let listed = ["https://brand.example", "https://other.example"];
        let ok = answer(&listed, Some("https://other.example"));
        assert_eq!(
            ok.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(),
            "https://other.example"
        );
        assert_eq!(ok.get(header::VARY).unwrap(), "origin");
        for origin in [Some("https://evil.example"), Some("https://brand.example.evil"), None] {
            let refused = answer(&listed, origin);
            assert!(refused.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "{origin:?}");
            assert_eq!(refused.get(header::VARY).unwrap(), "origin");
        }
    }
}
