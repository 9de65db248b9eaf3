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
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => ApiError::Conflict,
            StoreError::NotFound => ApiError::NotFound("campaign"),
            StoreError::Unavailable(m) => ApiError::Unavailable(format!("store unavailable: {m}")),
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
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(self.body())
    }
}
