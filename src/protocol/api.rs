//! The HTTP API's error codes (`{"error":{"code",…}}`, also a socket's refusal before the
//! upgrade): each with its one status and the code the JS SDK reports for it. The SDK
//! names `ended` `campaign_ended`, the code an `interact()` rejects with when a socket
//! closes with 4000, so a program branches on one code for "the campaign is over".

/// An error code of the HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiCode {
    Invalid,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    Ended,
    RateLimited,
    TooManyConnections,
    Unavailable,
}

impl ApiCode {
    /// Every code, in the order of the docs' table.
    pub const ALL: [ApiCode; 9] = [
        ApiCode::Invalid,
        ApiCode::Unauthorized,
        ApiCode::Forbidden,
        ApiCode::NotFound,
        ApiCode::Conflict,
        ApiCode::Ended,
        ApiCode::RateLimited,
        ApiCode::TooManyConnections,
        ApiCode::Unavailable,
    ];

    /// The `code` of the body, the status and the SDK's `LivetallyError.code`.
    const fn row(self) -> (&'static str, u16, &'static str) {
        match self {
            ApiCode::Invalid => ("invalid", 400, "invalid"),
            ApiCode::Unauthorized => ("unauthorized", 401, "unauthorized"),
            ApiCode::Forbidden => ("forbidden", 403, "forbidden"),
            ApiCode::NotFound => ("not_found", 404, "not_found"),
            ApiCode::Conflict => ("conflict", 409, "conflict"),
            ApiCode::Ended => ("ended", 410, "campaign_ended"),
            ApiCode::RateLimited => ("rate_limited", 429, "rate_limited"),
            ApiCode::TooManyConnections => ("too_many_connections", 429, "too_many_connections"),
            ApiCode::Unavailable => ("unavailable", 503, "unavailable"),
        }
    }

    pub const fn code(self) -> &'static str {
        self.row().0
    }

    pub const fn status(self) -> u16 {
        self.row().1
    }

    pub const fn sdk_code(self) -> &'static str {
        self.row().2
    }
}
