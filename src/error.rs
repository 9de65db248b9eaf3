//! One error type for the HTTP API and one mapping from it to status and JSON body
//! (`{"error":{"code","message","field"?}}`), so every route fails the same way.

use std::borrow::Cow;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::clients::auth_failures::Refused;
use crate::protocol::api::ApiCode;
use crate::store::StoreError;

/// An API failure with its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        /// The offending input: a body field, a query parameter, or `fields.<name>` of a
        /// registration.
        field: Option<Cow<'static, str>>,
        message: String,
    },
    #[error("missing operator token")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("campaign already exists")]
    Conflict,
    /// 409 too: the campaign must be ended first (`DELETE` of a live one).
    #[error("campaign is live: end it first")]
    Live,
    #[error("campaign has ended")]
    Gone,
    /// 400 for an org upload: the first error of the file, with its line (1-based).
    #[error("line {line}: {message}")]
    Upload {
        line: u64,
        field: &'static str,
        message: String,
    },
    /// 409 for `DELETE` of an org a live campaign counts by.
    #[error("{0}")]
    InUse(String),
    #[error("{0}")]
    Unavailable(String),
    /// A per-client limit: 429 with `code` (`too_many_connections`, `rate_limited`) and,
    /// when known, when to come back (`Retry-After`, seconds).
    #[error("{message}")]
    TooMany {
        code: ApiCode,
        message: &'static str,
        retry_after_s: Option<u64>,
    },
}

impl ApiError {
    pub fn bad(field: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// 429 `rate_limited`: come back after `wait`, rounded up to whole seconds (at least 1,
    /// so a client never retries at once).
    pub fn rate_limited(message: &'static str, wait: Duration) -> Self {
        let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        ApiError::TooMany {
            code: ApiCode::RateLimited,
            message,
            retry_after_s: Some(whole.max(1)),
        }
    }

    /// 429 `too_many_connections`: this client holds `--max-sockets-per-client` sockets here;
    /// it may come back when one of them closes, which no clock can tell.
    pub fn too_many_connections() -> Self {
        ApiError::TooMany {
            code: ApiCode::TooManyConnections,
            message: "too many open sockets from this address",
            retry_after_s: None,
        }
    }

    /// Whether a refused operator authentication counts towards the lockout: a wrong token
    /// (403) does; a missing one (401) guessed nothing and does not.
    pub fn is_failed_authentication(&self) -> bool {
        matches!(self, ApiError::Forbidden(_))
    }

    /// The JSON body every error response carries.
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({"code": self.code(), "message": self.to_string()});
        if let ApiError::BadRequest { field: Some(f), .. } = self {
            body["field"] = json!(f);
        }
        if let ApiError::Upload { line, field, .. } = self {
            body["field"] = json!(field);
            body["line"] = json!(line);
        }
        if let ApiError::Unauthorized(m) = self {
            body["message"] = json!(m);
        }
        json!({ "error": body })
    }

    /// The one mapping from an error to its code; the code carries the status
    /// ([`ApiCode`], the protocol's table).
    pub fn api_code(&self) -> ApiCode {
        match self {
            ApiError::BadRequest { .. } | ApiError::Upload { .. } => ApiCode::Invalid,
            ApiError::Unauthorized(_) => ApiCode::Unauthorized,
            ApiError::Forbidden(_) => ApiCode::Forbidden,
            ApiError::NotFound(_) => ApiCode::NotFound,
            ApiError::Conflict | ApiError::Live | ApiError::InUse(_) => ApiCode::Conflict,
            ApiError::Gone => ApiCode::Ended,
            ApiError::Unavailable(_) => ApiCode::Unavailable,
            ApiError::TooMany { code, .. } => *code,
        }
    }

    pub fn code(&self) -> &'static str {
        self.api_code().code()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => ApiError::Conflict,
            StoreError::NotFound => ApiError::NotFound("campaign"),
            StoreError::Live => ApiError::Live,
            // The store's own words (Redis and Lua messages) stay in the log: they describe
            // the deployment, and a public client can do nothing with them.
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "store call failed");
                ApiError::Unavailable("store unavailable; retry later".into())
            }
            // Refused at start; a running node never meets it.
            e @ StoreError::NewerSchema { .. } => {
                tracing::error!(error = %e, "store call refused");
                ApiError::Unavailable("store unavailable; retry later".into())
            }
        }
    }
}

/// An operator authentication refused: the credentials' own error, or 429 while the
/// client is locked out after too many failures.
impl From<Refused<ApiError>> for ApiError {
    fn from(r: Refused<ApiError>) -> Self {
        match r {
            Refused::Failed(e) => e,
            Refused::LockedOut(wait) => {
                ApiError::rate_limited("too many failed operator authentications from this address", wait)
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        // Every status in the table is a valid one (the table's test checks each).
        StatusCode::from_u16(self.api_code().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::TooMany {
            retry_after_s: Some(s), ..
        } = self
        {
            response.insert_header(("retry-after", s.to_string()));
        }
        response.json(self.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_failures_never_show_the_stores_words() {
        let e = ApiError::from(StoreError::Unavailable(
            "ERR Error running script (call to f_9a1c): @user_script:12: oom".into(),
        ));
        let body = e.body().to_string();
        assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!body.contains("script") && !body.contains("oom"), "{body}");
        assert_eq!(e.body()["error"]["code"], "unavailable");
    }

    #[test]
    fn per_client_limits_are_429_with_retry_after() {
        let e = ApiError::TooMany {
            code: ApiCode::RateLimited,
            message: "too many requests from this address",
            retry_after_s: Some(12),
        };
        let r = e.error_response();
        assert_eq!(r.status().as_u16(), 429);
        assert_eq!(r.headers().get("retry-after").unwrap(), "12");
        assert_eq!(e.body()["error"]["code"], "rate_limited");
    }

    #[test]
    fn retry_after_rounds_up_to_a_whole_second() {
        let secs = |wait| match ApiError::rate_limited("x", wait) {
            ApiError::TooMany { retry_after_s, .. } => retry_after_s,
            _ => None,
        };
        assert_eq!(secs(Duration::from_millis(100)), Some(1));
        assert_eq!(secs(Duration::from_millis(10_001)), Some(11));
        assert_eq!(secs(Duration::from_secs(60)), Some(60));
        assert_eq!(secs(Duration::ZERO), Some(1));
    }

    #[test]
    fn too_many_connections_has_no_retry_after() {
        let r = ApiError::too_many_connections().error_response();
        assert_eq!(r.status().as_u16(), 429);
        assert!(r.headers().get("retry-after").is_none());
    }
}
