//! Query-parameter parsing and fault selection.

use std::borrow::Cow;

/// A misbehaviour the server can be told to perform (`fault=KIND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// `reset_before`: read the request fully, then close with RST and write nothing.
    ResetBefore,
    /// `reset_mid_body`: write the head (Content-Length of the full body, default
    /// 1024 bytes) and about half of the body, then RST.
    ResetMidBody,
    /// `close_before`: close cleanly (FIN) without writing a response.
    CloseBefore,
    /// `never`: never respond, but keep reading so a client close is noticed.
    Never,
    /// `drip`: send the head, then the body one byte every `drip_ms` (default 100) ms.
    Drip,
    /// `garbage`: write non-HTTP bytes, then close.
    Garbage,
    /// `status503`: respond 503 with `Retry-After: {retry_after or 1}`.
    Status503,
    /// `slow`: wait `slow_ms` (default 2000) ms, then respond normally.
    Slow,
}

impl FaultKind {
    /// Parses a fault name as used in the query string.
    pub fn parse(s: &str) -> Option<FaultKind> {
        Some(match s {
            "reset_before" => FaultKind::ResetBefore,
            "reset_mid_body" => FaultKind::ResetMidBody,
            "close_before" => FaultKind::CloseBefore,
            "never" => FaultKind::Never,
            "drip" => FaultKind::Drip,
            "garbage" => FaultKind::Garbage,
            "status503" => FaultKind::Status503,
            "slow" => FaultKind::Slow,
            _ => return None,
        })
    }
}

/// Maximum number of entries in `faults=`.
const MAX_FAULTS: usize = 8;

/// Parsed per-request behaviour; borrows from the request target.
#[derive(Debug)]
pub(crate) struct Params<'a> {
    pub(crate) status: u16,
    pub(crate) body_size: Option<u64>,
    pub(crate) content_type: Option<Cow<'a, str>>,
    pub(crate) delay_ms: u64,
    pub(crate) headers: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    pub(crate) retry_after: Option<Cow<'a, str>>,
    pub(crate) fault: Option<FaultKind>,
    pub(crate) fault_pct: f64,
    pub(crate) faults: [(FaultKind, f64); MAX_FAULTS],
    pub(crate) nfaults: usize,
    pub(crate) drip_ms: u64,
    pub(crate) slow_ms: u64,
    pub(crate) to: Option<Cow<'a, str>>,
    pub(crate) code: Option<u16>,
}

impl Default for Params<'_> {
    fn default() -> Self {
        Params {
            status: 200,
            body_size: None,
            content_type: None,
            delay_ms: 0,
            headers: Vec::new(),
            retry_after: None,
            fault: None,
            fault_pct: 100.0,
            faults: [(FaultKind::Slow, 0.0); MAX_FAULTS],
            nfaults: 0,
            drip_ms: 100,
            slow_ms: 2000,
            to: None,
            code: None,
        }
    }
}

fn num<T: std::str::FromStr>(v: &str, what: &'static str) -> Result<T, &'static str> {
    v.parse().map_err(|_| what)
}

fn pct(v: &str) -> Result<f64, &'static str> {
    match v.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err("bad percentage (0-100)"),
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_header_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

impl<'a> Params<'a> {
    /// Parses the query string (without `?`). Errors are human-readable reasons for a 400.
    pub(crate) fn parse(query: &'a str) -> Result<Params<'a>, &'static str> {
        let mut p = Params::default();
        for pair in query.split('&') {
            if pair.is_empty() {
                continue;
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "status" => {
                    p.status = num(v, "bad status")?;
                    if !(200..=999).contains(&p.status) {
                        return Err("status must be in 200..=999");
                    }
                }
                "body_size" => p.body_size = Some(num(v, "bad body_size")?),
                "content_type" => {
                    let v = decode(v);
                    if !is_header_value(&v) {
                        return Err("bad content_type");
                    }
                    p.content_type = Some(v);
                }
                "delay_ms" => p.delay_ms = num(v, "bad delay_ms")?,
                "header" => {
                    let v = decode(v);
                    let (name, value) = match &v {
                        Cow::Borrowed(b) => {
                            let (n, val) = b.split_once(':').ok_or("header must be Name:Value")?;
                            (Cow::Borrowed(n), Cow::Borrowed(val.trim()))
                        }
                        Cow::Owned(o) => {
                            let (n, val) = o.split_once(':').ok_or("header must be Name:Value")?;
                            (Cow::Owned(n.to_owned()), Cow::Owned(val.trim().to_owned()))
                        }
                    };
                    if !is_token(&name) || !is_header_value(&value) {
                        return Err("bad header");
                    }
                    p.headers.push((name, value));
                }
                "retry_after" => {
                    let v = decode(v);
                    if !is_header_value(&v) {
                        return Err("bad retry_after");
                    }
                    p.retry_after = Some(v);
                }
                "fault" => p.fault = Some(FaultKind::parse(v).ok_or("unknown fault kind")?),
                "fault_pct" => p.fault_pct = pct(v)?,
                "faults" => {
                    let v = decode(v);
                    for item in v.split(',') {
                        if item.is_empty() {
                            continue;
                        }
                        let (kind, pc) = item.split_once(':').unwrap_or((item, "100"));
                        let kind = FaultKind::parse(kind).ok_or("unknown fault kind")?;
                        if p.nfaults == MAX_FAULTS {
                            return Err("too many faults");
                        }
                        p.faults[p.nfaults] = (kind, pct(pc)?);
                        p.nfaults += 1;
                    }
                }
                "drip_ms" => p.drip_ms = num(v, "bad drip_ms")?,
                "slow_ms" => p.slow_ms = num(v, "bad slow_ms")?,
                "to" => {
                    let v = decode(v);
                    if !is_header_value(&v) {
                        return Err("bad to");
                    }
                    p.to = Some(v);
                }
                "code" => {
                    let c: u16 = num(v, "bad code")?;
                    if !(200..=999).contains(&c) {
                        return Err("code must be in 200..=999");
                    }
                    p.code = Some(c);
                }
                // Unknown parameters are ignored (clients may add cache busters etc.).
                _ => {}
            }
        }
        Ok(p)
    }

    /// Whether this request asks for any fault at all (only those draw from the RNG).
    pub(crate) fn has_fault_spec(&self) -> bool {
        self.fault.is_some() || self.nfaults > 0
    }

    /// Picks the fault for a roll in `[0, 100)`.
    pub(crate) fn choose(&self, roll: f64) -> Option<FaultKind> {
        if let Some(f) = self.fault {
            if roll < self.fault_pct {
                return Some(f);
            }
            return None;
        }
        let mut acc = 0.0;
        for &(kind, pc) in &self.faults[..self.nfaults] {
            acc += pc;
            if roll < acc {
                return Some(kind);
            }
        }
        None
    }
}

/// splitmix64: a fast, well-mixed hash of a 64-bit counter.
pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform roll in `[0, 100)` for fault sequence number `seq`.
pub(crate) fn roll(seq: u64, seed: u64) -> f64 {
    let r = splitmix64(seq ^ seed) >> 11;
    (r as f64) / ((1u64 << 53) as f64) * 100.0
}

/// Percent-decodes a query component (`+` is a space); borrows when nothing to decode.
/// Invalid escapes are kept literally; invalid UTF-8 is replaced.
pub(crate) fn decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        assert_eq!(decode("a%20b+c"), "a b c");
        assert_eq!(decode("X-A%3A1"), "X-A:1");
        assert_eq!(decode("%"), "%");
        assert_eq!(decode("%4"), "%4");
        assert_eq!(decode("%41"), "A");
        assert!(matches!(decode("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn parses_and_chooses() {
        let p = Params::parse("faults=reset_mid_body:20,status503:5,slow:2&x=1").unwrap();
        assert_eq!(p.nfaults, 3);
        assert_eq!(p.choose(10.0), Some(FaultKind::ResetMidBody));
        assert_eq!(p.choose(22.0), Some(FaultKind::Status503));
        assert_eq!(p.choose(26.0), Some(FaultKind::Slow));
        assert_eq!(p.choose(27.0), None);
        let p = Params::parse("fault=never&fault_pct=12.5").unwrap();
        assert_eq!(p.choose(12.4), Some(FaultKind::Never));
        assert_eq!(p.choose(12.5), None);
        assert!(Params::parse("fault=bogus").is_err());
        assert!(Params::parse("status=abc").is_err());
        assert!(Params::parse("status=99").is_err());
        assert!(Params::parse("header=Bad%0AName:v").is_err());
        let p = Params::parse("header=X-A%3A%201&header=X-B:2").unwrap();
        assert_eq!(p.headers.len(), 2);
        assert_eq!(p.headers[0].0, "X-A");
        assert_eq!(p.headers[0].1, "1");
    }

    #[test]
    fn roll_is_uniform_enough() {
        let n = 100_000;
        let below = (0..n).filter(|&i| roll(i, 42) < 25.0).count();
        assert!((24_000..26_000).contains(&below), "{below}");
    }
}
