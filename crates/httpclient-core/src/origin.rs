//! `Origin`: the one definition of "host" in the workspace.
//!
//! Per-host rate limits, health checks and per-host concurrency limits must
//! agree on what a host is, or a limit keyed on `example.com` would miss
//! `EXAMPLE.com:80`. An origin is scheme + lower-cased host + port, with the
//! scheme's default port filled in.

use std::fmt;
use std::sync::Arc;

use http::Uri;

use crate::Error;

/// `http` or `https`: the only schemes drivers accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// Plain HTTP, default port 80.
    Http,
    /// HTTP over TLS, default port 443.
    Https,
}

impl Scheme {
    /// The scheme's default port.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Scheme, host and port of a URL, normalised: `HTTP://Example.COM:80/x` and
/// `http://example.com/y` have the same origin. Cheap to clone (the host is
/// shared).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    scheme: Scheme,
    host: Arc<str>,
    port: u16,
}

impl Origin {
    /// The origin of an absolute `http`/`https` URI.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when the URI has no scheme, a scheme other
    /// than http/https, or no host.
    pub fn from_uri(uri: &Uri) -> Result<Origin, Error> {
        let (scheme, host) = Origin::check(uri)?;
        Ok(Origin::from_checked(uri, scheme, host))
    }

    /// Validate `uri` as an origin source without allocating: the scheme
    /// (http/https, any case) and a non-empty host. The errors are the ones
    /// [`Origin::from_uri`] reports; [`Request`](crate::Request) runs this
    /// when it is built and makes the `Origin` itself only when asked.
    pub(crate) fn check(uri: &Uri) -> Result<(Scheme, &str), Error> {
        let scheme = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") => Scheme::Http,
            Some(s) if s.eq_ignore_ascii_case("https") => Scheme::Https,
            Some(other) => {
                return Err(Error::invalid_request(format!(
                    "unsupported scheme `{other}` in `{uri}` (only http and https)"
                )));
            }
            None => {
                return Err(Error::invalid_request(format!(
                    "URL `{uri}` has no scheme (expected http:// or https://)"
                )));
            }
        };
        match uri.host() {
            Some(h) if !h.is_empty() => Ok((scheme, h)),
            _ => Err(Error::invalid_request(format!("URL `{uri}` has no host"))),
        }
    }

    /// The origin of a URI [`Origin::check`] accepted, as `(scheme, host)`.
    pub(crate) fn from_checked(uri: &Uri, scheme: Scheme, host: &str) -> Origin {
        let port = uri.port_u16().unwrap_or(scheme.default_port());
        // Hosts are almost always lower case already: skip the extra copy
        // then (this runs for most requests that go through a per-host
        // layer).
        let host: Arc<str> = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            Arc::from(host.to_ascii_lowercase())
        } else {
            Arc::from(host)
        };
        Origin { scheme, host, port }
    }

    /// Parse a URL (with or without a path) and take its origin.
    ///
    /// ```
    /// use httpclient_core::Origin;
    /// let a = Origin::parse("HTTP://Example.com:80/path").unwrap();
    /// let b = Origin::parse("http://example.com").unwrap();
    /// assert_eq!(a, b);
    /// assert_eq!(a.to_string(), "http://example.com");
    /// assert!(Origin::parse("ftp://example.com").is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an unparsable URL, a missing host or an
    /// unsupported scheme.
    pub fn parse(url: &str) -> Result<Origin, Error> {
        let uri: Uri = url.parse().map_err(|e| Error::InvalidRequest {
            reason: format!("cannot parse URL `{url}`"),
            source: Some(Box::new(e)),
        })?;
        Origin::from_uri(&uri)
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The lower-cased host (IPv6 addresses keep their brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, with the scheme's default filled in.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `scheme://host[:port]/` + `path_and_query` as a URL string; handy for
    /// probes. `path_and_query` should start with `/`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{self}{path_and_query}")
    }
}

impl fmt::Display for Origin {
    /// `scheme://host`, plus `:port` when it is not the scheme's default.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        if self.port != self.scheme.default_port() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Origin({self})")
    }
}

impl std::str::FromStr for Origin {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Origin::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports_and_case_normalise() {
        let o = Origin::parse("https://API.example.com:443/v1?x=1").unwrap();
        assert_eq!(o, Origin::parse("https://api.example.com").unwrap());
        assert_eq!(o.port(), 443);
        assert_eq!(o.scheme(), Scheme::Https);
        assert_ne!(o, Origin::parse("http://api.example.com").unwrap());
        assert_ne!(o, Origin::parse("https://api.example.com:8443").unwrap());
        let p = Origin::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(p.to_string(), "http://127.0.0.1:8080");
        assert_eq!(p.url("/health"), "http://127.0.0.1:8080/health");
        let v6 = Origin::parse("http://[::1]:9000/x").unwrap();
        assert_eq!(v6.host(), "[::1]");
        assert_eq!(v6.port(), 9000);
    }

    #[test]
    fn bad_urls_are_invalid_requests() {
        for bad in [
            "",
            "example.com/path",
            "ftp://example.com",
            "http://",
            "/just/a/path",
            "ht tp://x",
        ] {
            let err = Origin::parse(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidRequest { .. }),
                "{bad:?} gave {err:?}"
            );
        }
    }
}
