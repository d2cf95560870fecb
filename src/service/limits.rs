//! Rate limits per client (token buckets keyed by the client's address): residents' reports —
//! the only writes open to the public — and failed authentications. A client over its limit is
//! answered 429 with `Retry-After`; others are not slowed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Buckets kept before full ones are forgotten.
const MAX_CLIENTS: usize = 10_000;

/// The longest request target (path and query), bytes.
pub const MAX_URI: usize = 8 * 1024;
/// Most header fields in a request, and their largest total size (names and values), bytes.
pub const MAX_HEADERS: usize = 100;
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// 414 for a request target over [`MAX_URI`], 431 for headers over [`MAX_HEADERS`] or
/// [`MAX_HEADER_BYTES`] — answered here, with the JSON error, before anything else reads them.
pub(super) async fn check_head(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use super::error::ApiError;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request target is {target} bytes; at most {MAX_URI}"),
        )
        .into_response();
    }
    let h = req.headers();
    let bytes: usize = h.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if h.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request_header_fields_too_large",
            format!(
                "{} header fields, {bytes} bytes; at most {MAX_HEADERS} fields and {MAX_HEADER_BYTES} bytes",
                h.len()
            ),
        )
        .into_response();
    }
    next.run(req).await
}

/// A rate per client: `per_minute` on average, `burst` at once. A rate of 0 is no limit.
pub struct RateLimit {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    #[must_use]
    pub fn new(per_minute: u32, burst: u32) -> RateLimit {
        RateLimit {
            per_second: f64::from(per_minute) / 60.0,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The client's bucket, refilled to now.
    fn refill(&self, b: &mut Bucket, now: Instant) {
        let dt = now.duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + dt * self.per_second).min(self.burst);
        b.at = now;
    }

    /// Whole seconds until the bucket holds one token again.
    fn wait(&self, b: &Bucket) -> u64 {
        let missing = (1.0 - b.tokens).max(0.0);
        // at least 1 s; the rate is > 0 here
        ((missing / self.per_second).ceil() as u64).max(1)
    }

    /// Take one for `client`: `Err(seconds)` to wait when none is left.
    ///
    /// # Errors
    /// The client is over its limit: how many seconds until it may try again.
    pub fn take(&self, client: &str) -> Result<(), u64> {
        self.check(client, true)
    }

    /// Would one be granted now? Takes nothing.
    ///
    /// # Errors
    /// The client is over its limit: how many seconds until it may try again.
    pub fn peek(&self, client: &str) -> Result<(), u64> {
        self.check(client, false)
    }

    fn check(&self, client: &str, take: bool) -> Result<(), u64> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let Ok(mut m) = self.buckets.lock() else {
            return Ok(());
        };
        if m.len() >= MAX_CLIENTS && !m.contains_key(client) {
            let (ps, burst) = (self.per_second, self.burst);
            m.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * ps < burst);
        }
        let b = m.entry(client.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        self.refill(b, now);
        if b.tokens < 1.0 {
            return Err(self.wait(b));
        }
        if take {
            b.tokens -= 1.0;
        }
        Ok(())
    }
}

/// The service's limits (from `[rate_limits]` in the config).
pub struct Limits {
    /// Residents' reports from the public (Open311 POST without a token).
    pub public_writes: RateLimit,
    /// Requests with an unknown or revoked token.
    pub failed_auth: RateLimit,
}

/// `[rate_limits]`: per client address (behind a trusted proxy, the address it forwards).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Reports a minute from one client without a token (0: no limit). Default 60.
    pub public_writes_per_minute: u32,
    /// Reports at once before the rate applies. Default 20.
    pub public_writes_burst: u32,
    /// Failed authentications a minute from one client before it is refused (0: no limit).
    /// Default 20, 20 at once.
    pub failed_auth_per_minute: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            public_writes_per_minute: 60,
            public_writes_burst: 20,
            failed_auth_per_minute: 20,
        }
    }
}

impl Limits {
    #[must_use]
    pub fn new(c: &RateLimitConfig) -> Limits {
        Limits {
            public_writes: RateLimit::new(c.public_writes_per_minute, c.public_writes_burst),
            failed_auth: RateLimit::new(c.failed_auth_per_minute, c.failed_auth_per_minute),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_per_client() {
        let l = RateLimit::new(60, 3);
        for _ in 0..3 {
            assert_eq!(l.take("a"), Ok(()));
        }
        assert_eq!(l.take("a"), Err(1), "one a second");
        assert_eq!(l.peek("b"), Ok(()), "another client is not slowed");
        assert_eq!(l.take("b"), Ok(()));
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(l.take("a"), Ok(()), "refilled");
    }

    #[test]
    fn zero_is_no_limit_and_the_wait_is_whole_seconds() {
        let l = RateLimit::new(0, 1);
        for _ in 0..1000 {
            assert_eq!(l.take("a"), Ok(()));
        }
        let slow = RateLimit::new(2, 1);
        assert_eq!(slow.take("a"), Ok(()));
        assert_eq!(slow.take("a"), Err(30));
        assert_eq!(slow.peek("a"), Err(30));
    }

    #[test]
    fn many_clients_are_forgotten_when_full() {
        let l = RateLimit::new(60, 2);
        for i in 0..MAX_CLIENTS + 5 {
            let _ = l.peek(&format!("c{i}"));
        }
        assert!(l.buckets.lock().unwrap().len() <= MAX_CLIENTS);
    }
}
