//! One error type for the HTTP API and one mapping from it to status and JSON body
//! (`{"error":{"code","message","field"?}}`), so every route fails the same way.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::store::StoreError;

/// An API failure with its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        field: Option<&'static str>,
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
    #[error("campaign has ended")]
    Gone,
    #[error("{0}")]
    Unavailable(String),
    /// A per-client limit: 429 with `code` (`too_many_connections`, `rate_limited`) and,
    /// when known, when to come back (`Retry-After`, seconds).
    #[error("{message}")]
    TooMany {
        code: &'static str,
        message: &'static str,
        retry_after_s: Option<u64>,
    },
}

impl ApiError {
    pub fn bad(field: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: Some(field),
            message: message.into(),
        }
    }

    /// The JSON body every error response carries.
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({"code": self.code(), "message": self.to_string()});
        if let ApiError::BadRequest { field: Some(f), .. } = self {
            body["field"] = json!(f);
        }
        if let ApiError::Unauthorized(m) = self {
            body["message"] = json!(m);
        }
        json!({ "error": body })
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "invalid",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict => "conflict",
            ApiError::Gone => "ended",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::TooMany { code, .. } => code,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => ApiError::Conflict,
            StoreError::NotFound => ApiError::NotFound("campaign"),
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

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict => StatusCode::CONFLICT,
            ApiError::Gone => StatusCode::GONE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
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
            code: "rate_limited",
            message: "too many requests from this address",
            retry_after_s: Some(12),
        };
        let r = e.error_response();
        assert_eq!(r.status().as_u16(), 429);
        assert_eq!(r.headers().get("retry-after").unwrap(), "12");
        assert_eq!(e.body()["error"]["code"], "rate_limited");
    }
}
