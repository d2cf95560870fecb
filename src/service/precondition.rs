//! `If-Match` (RFC 9110 §13.1.1): a list of entity tags or `*`. Strong comparison: a weak tag
//! (`W/"…"`) never matches; `*` matches any current representation of the plan.

use super::error::ApiError;
use axum::http::{HeaderMap, StatusCode, header};

/// What an `If-Match` header asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// No header.
    Absent,
    /// `*`.
    Any,
    /// The listed strong tags, with their quotes.
    Tags(Vec<String>),
}

impl IfMatch {
    /// Read the header (all its lines, comma-separated lists).
    #[must_use]
    pub fn of(h: &HeaderMap) -> IfMatch {
        let mut tags = Vec::new();
        let mut any = false;
        let mut seen = false;
        for v in h.get_all(header::IF_MATCH) {
            seen = true;
            let Ok(v) = v.to_str() else { continue };
            for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if t == "*" {
                    any = true;
                } else if !t.starts_with("W/") {
                    tags.push(t.to_string());
                }
            }
        }
        match (seen, any) {
            (false, _) => IfMatch::Absent,
            (true, true) => IfMatch::Any,
            (true, false) => IfMatch::Tags(tags),
        }
    }

    /// The header, which must be present (428 otherwise, saying where the ETag comes from).
    ///
    /// # Errors
    /// 428 when absent.
    pub fn required(h: &HeaderMap) -> Result<IfMatch, ApiError> {
        match IfMatch::of(h) {
            IfMatch::Absent => Err(ApiError::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition_required",
                "If-Match with the plan's ETag is required (GET /plans/{id} gives it)",
            )),
            m => Ok(m),
        }
    }

    /// Does it match the current tag?
    #[must_use]
    pub fn matches(&self, current: &str) -> bool {
        match self {
            IfMatch::Absent | IfMatch::Any => true,
            IfMatch::Tags(t) => t.iter().any(|x| x == current),
        }
    }

    /// The plan versions its tags name for plan `id` (`"plan-{id}-v{n}"`).
    #[must_use]
    pub fn plan_versions(&self, id: i64) -> Vec<i64> {
        let IfMatch::Tags(t) = self else {
            return Vec::new();
        };
        let prefix = format!("plan-{id}-v");
        t.iter()
            .filter_map(|x| x.trim_matches('"').strip_prefix(&prefix)?.parse().ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn h(v: &[&str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for x in v {
            m.append(header::IF_MATCH, HeaderValue::from_str(x).unwrap());
        }
        m
    }

    #[test]
    fn lists_stars_and_weak_tags() {
        assert_eq!(IfMatch::of(&h(&[])), IfMatch::Absent);
        assert_eq!(IfMatch::of(&h(&["*"])), IfMatch::Any);
        let m = IfMatch::of(&h(&["\"plan-3-v1\", \"plan-3-v2\"", "W/\"plan-3-v3\""]));
        assert!(m.matches("\"plan-3-v2\"") && !m.matches("\"plan-3-v3\""));
        assert_eq!(m.plan_versions(3), [1, 2]);
        assert!(IfMatch::required(&h(&[])).is_err());
    }
}
