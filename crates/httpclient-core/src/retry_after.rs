//! `Retry-After` parsing, shared by the rate limiter and the retry layer so
//! neither has to depend on the other.
//!
//! The header is either delay-seconds (`120`) or an HTTP date. Anything
//! else — negative numbers, fractions, garbage, a date in the past — yields
//! `None`, and callers fall back to their own backoff. Values are capped at
//! [`MAX_RETRY_AFTER`] so later arithmetic cannot overflow; a caller that
//! refuses to wait that long compares against its own, smaller cap.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::RETRY_AFTER;

/// The largest delay ever returned: one year. Larger values are clamped.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parse one `Retry-After` value relative to `now`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use httpclient_core::parse_retry_after;
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
/// assert_eq!(parse_retry_after("garbage", now), None);
/// let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
/// assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(30)));
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: seconds. Too many digits to fit saturates to the cap.
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    let delay = when.duration_since(now).ok()?;
    if delay.is_zero() {
        return None;
    }
    Some(delay.min(MAX_RETRY_AFTER))
}

/// The first `Retry-After` header of a response, parsed with
/// [`parse_retry_after`]. `None` when absent, not ASCII, or unusable.
pub fn retry_after_from_headers(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
    }

    #[test]
    fn seconds_and_dates() {
        assert_eq!(parse_retry_after(" 0 ", now()), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("86400", now()),
            Some(Duration::from_secs(86400))
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now()),
            Some(MAX_RETRY_AFTER)
        );
        let date = httpdate::fmt_http_date(now() + Duration::from_secs(120));
        assert_eq!(
            parse_retry_after(&date, now()),
            Some(Duration::from_secs(120))
        );
    }

    #[test]
    fn garbage_and_the_past_are_none() {
        for bad in [
            "",
            "-1",
            "1.5",
            "soon",
            "Wed, 99 Foo 2020 00:00:00 GMT",
            "1e3",
        ] {
            assert_eq!(parse_retry_after(bad, now()), None, "{bad:?}");
        }
        let past = httpdate::fmt_http_date(now() - Duration::from_secs(10));
        assert_eq!(parse_retry_after(&past, now()), None);
    }

    #[test]
    fn from_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after_from_headers(&h, now()), None);
        h.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(
            retry_after_from_headers(&h, now()),
            Some(Duration::from_secs(3))
        );
    }
}
