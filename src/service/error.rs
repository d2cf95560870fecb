//! Errors as JSON: `{ "error": code, "message": … }` with the right status; internals are logged,
//! never sent.

use crate::store::StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra fields (e.g. the allowed transitions).
    pub extra: Option<Box<Value>>,
    /// Seconds to wait before trying again (`Retry-After`, with 429 and 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: None,
            retry_after: None,
        }
    }
    /// 429: the client is over a rate limit; try again after `seconds`.
    pub fn too_many(what: &str, seconds: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            format!("{what}: too many from this address; try again in {seconds} s"),
        );
        e.retry_after = Some(seconds);
        e
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", m)
    }
    pub fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", m)
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", m)
    }
    pub fn unprocessable(m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", m)
    }
    pub fn internal(m: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {m}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error (logged on the server)",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound { .. } => Self::not_found(e.to_string()),
            StoreError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m.clone()),
            StoreError::Invalid(m) => Self::unprocessable(m.clone()),
            StoreError::Stale(m) => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                m.clone(),
            ),
            StoreError::Unavailable(_) => {
                tracing::error!("store unavailable: {e}");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the store is unavailable",
                )
            }
            StoreError::Schema(_)
            | StoreError::NotGeoPackage(_)
            | StoreError::Backend(_)
            | StoreError::Gpkg(_)
            | StoreError::Postgis(_) => Self::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let (Some(extra), Some(obj)) = (self.extra, body.as_object_mut())
            && let Value::Object(extra) = *extra
        {
            obj.extend(extra);
        }
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, s.into());
        }
        resp
    }
}

/// The error code of a status, for responses made by layers (limits, timeouts, rejections).
#[must_use]
pub fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "timeout",
        409 => "conflict",
        412 => "precondition_failed",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable",
        428 => "precondition_required",
        429 => "too_many_requests",
        414 => "uri_too_long",
        431 => "request_header_fields_too_large",
        503 => "unavailable",
        _ => "internal",
    }
}
