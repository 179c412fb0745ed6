//! Building reqwest's `Url` from a core request's `http::Uri` without
//! re-parsing the origin every time.
//!
//! reqwest wants a `url::Url`, and `Url::parse` is the largest single cost
//! of a request on a keep-alive connection (about 6k instructions), most of
//! it in the host: `Host::parse` runs every domain through IDNA mapping even
//! when it is plain ASCII. A batch sends thousands of requests to one or a
//! few origins, so the origin is parsed over and over to the same result.
//!
//! So a tiny per-thread cache keeps the parsed `Url` of the last few
//! origins (`scheme://authority`, compared as exact bytes), and a request to
//! a known origin is a clone of that `Url` with its path and query replaced
//! through `Url::set_path` / `Url::set_query`. Those run the very parser
//! functions `Url::parse` runs after the authority (`parse_path_start`,
//! `parse_query`, with the same scheme), so the result is the same `Url`;
//! the tests below check this against `Url::parse` over generated
//! paths, queries and authorities. Where the argument does not obviously
//! hold, the full parse is used instead:
//!
//! * the authority has anything but ASCII letters, digits and `.-_:[]`
//!   (no userinfo, no percent-encoded or non-ASCII host: their parsing is
//!   left entirely to `Url::parse`), or is long;
//! * the scheme is not `http` or `https`;
//! * the URL ends in a control character or space, which `Url::parse`
//!   trims from the whole input but the setters would encode. (`http::Uri`
//!   never holds one, nor a `#`, which the setters would also treat
//!   differently; the check is cheap insurance.)
//!
//! A URL reqwest cannot use fails in the full parse exactly as before: an
//! origin only enters the cache after parsing successfully, and the path
//! and query setters cannot fail.
//!
//! **Why per thread and not per driver.** The cached value depends only on
//! the origin's bytes (`Url::parse` is a pure function), so a cache shared
//! by every driver on a thread is as correct as one per driver, and it
//! needs no lock: a driver shared by tasks on a multi-threaded runtime
//! never contends on it. Memory is bounded: [`SLOTS`] entries per thread,
//! each an origin of at most [`MAX_ORIGIN`] bytes, freed when the thread
//! exits.

use std::cell::RefCell;

use http::Uri;
use reqwest::Url;

/// Origins kept per thread; replaced round-robin.
pub(crate) const SLOTS: usize = 4;

/// Longest `scheme://authority` that is cached (a DNS name is at most 253
/// bytes, plus scheme, port and brackets).
pub(crate) const MAX_ORIGIN: usize = 280;

struct Entry {
    /// `scheme://authority`, exactly as the `Uri` spells it.
    origin: String,
    /// `Url::parse` of the origin, path `/`, no query.
    base: Url,
}

struct Cache {
    entries: [Option<Entry>; SLOTS],
    /// The slot the next new origin replaces.
    next: usize,
}

thread_local! {
    static CACHE: RefCell<Cache> = const {
        RefCell::new(Cache { entries: [const { None }; SLOTS], next: 0 })
    };
}

/// Whether `origin` is `scheme` + `://` + `authority`, without building it.
fn is_origin(origin: &str, scheme: &str, authority: &str) -> bool {
    origin.len() == scheme.len() + 3 + authority.len()
        && origin
            .strip_prefix(scheme)
            .and_then(|rest| rest.strip_prefix("://"))
            == Some(authority)
}

/// Whether the fast path is known to give `Url::parse`'s result for this
/// scheme and authority.
fn cacheable(scheme: &str, authority: &str) -> bool {
    matches!(scheme, "http" | "https")
        && !authority.is_empty()
        && scheme.len() + 3 + authority.len() <= MAX_ORIGIN
        && authority.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
        })
}

/// The `Url` for `uri` built from a cached origin, or `None` when the
/// origin is not cached or the URI is not one the fast path handles (then
/// the caller parses it with `Url::parse` and offers the result to
/// [`remember`]).
pub(crate) fn cached(uri: &Uri) -> Option<Url> {
    let scheme = uri.scheme_str()?;
    let authority = uri.authority()?.as_str();
    let path_and_query = uri.path_and_query().map_or("", |p| p.as_str());
    if !cacheable(scheme, authority)
        || path_and_query
            .bytes()
            .next_back()
            .is_some_and(|b| b <= b' ')
    {
        return None;
    }
    let mut url = CACHE.with_borrow(|cache| {
        cache
            .entries
            .iter()
            .flatten()
            .find(|e| is_origin(&e.origin, scheme, authority))
            .map(|e| e.base.clone())
    })?;
    // `Uri::path` is `/` for an empty path, as `Url` has for http(s).
    url.set_path(uri.path());
    if let Some(query) = uri.query() {
        url.set_query(Some(query));
    }
    Some(url)
}

/// Caches the origin of `uri`, given `url`, the result of `Url::parse` on
/// its string form, when the fast path handles it.
pub(crate) fn remember(uri: &Uri, url: &Url) {
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return;
    };
    let authority = authority.as_str();
    if !cacheable(scheme, authority) {
        return;
    }
    let mut base = url.clone();
    base.set_path("/");
    base.set_query(None);
    let mut origin = String::with_capacity(scheme.len() + 3 + authority.len());
    origin.push_str(scheme);
    origin.push_str("://");
    origin.push_str(authority);
    CACHE.with_borrow_mut(|cache| {
        let slot = cache.next;
        cache.next = (slot + 1) % SLOTS;
        cache.entries[slot] = Some(Entry { origin, base });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn clear() {
        CACHE.with_borrow_mut(|c| {
            c.entries = [const { None }; SLOTS];
            c.next = 0;
        });
    }

    /// What the driver used before the cache: `Url::parse` of the URI's
    /// string form.
    fn reference(uri: &Uri) -> Result<Url, <Url as std::str::FromStr>::Err> {
        Url::parse(&uri.to_string())
    }

    /// Every observable part of the two `Url`s is the same.
    fn assert_same(fast: &Url, full: &Url, input: &str) {
        assert_eq!(fast.as_str(), full.as_str(), "{input}");
        assert_eq!(format!("{fast:?}"), format!("{full:?}"), "{input}");
        assert_eq!(fast.host(), full.host(), "{input}");
        assert_eq!(fast.port(), full.port(), "{input}");
        assert_eq!(fast.port_or_known_default(), full.port_or_known_default());
        assert_eq!(fast.path(), full.path(), "{input}");
        assert_eq!(fast.query(), full.query(), "{input}");
        assert_eq!(fast.fragment(), full.fragment(), "{input}");
        assert_eq!(fast.username(), full.username(), "{input}");
        assert_eq!(fast.password(), full.password(), "{input}");
        assert_eq!(fast.origin(), full.origin(), "{input}");
        assert_eq!(
            fast.path_segments().map(|s| s.collect::<Vec<_>>()),
            full.path_segments().map(|s| s.collect::<Vec<_>>()),
            "{input}"
        );
        // Mutating both the same way keeps them the same (the private
        // offsets agree too).
        let (mut a, mut b) = (fast.clone(), full.clone());
        a.set_query(Some("z=1"));
        b.set_query(Some("z=1"));
        a.set_fragment(Some("f"));
        b.set_fragment(Some("f"));
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "{input}");
    }

    /// Caches the origin through `first`, then builds `second` (same
    /// origin) from the cache and compares it with the full parse.
    /// Inputs `http::Uri` rejects are skipped: the driver never sees them.
    fn check_pair(origin: &str, first: &str, second: &str) {
        clear();
        let (Ok(u1), Ok(u2)) = (
            format!("{origin}{first}").parse::<Uri>(),
            format!("{origin}{second}").parse::<Uri>(),
        ) else {
            return;
        };
        assert!(cached(&u1).is_none(), "empty cache hit for {u1}");
        let Ok(full1) = reference(&u1) else {
            // Never cached: the full parse reports the error.
            assert!(cached(&u2).is_none(), "{u2}");
            return;
        };
        remember(&u1, &full1);
        match (cached(&u2), reference(&u2)) {
            (Some(fast), Ok(full)) => assert_same(&fast, &full, &u2.to_string()),
            (None, _) => {
                let (scheme, authority) = (u2.scheme_str().unwrap(), u2.authority().unwrap());
                // (`second` may have changed the authority: `origin` + `:1`.)
                let same_origin = u1.scheme() == u2.scheme() && u1.authority() == u2.authority();
                assert!(
                    !same_origin || !cacheable(scheme, authority.as_str()),
                    "no fast path for cacheable {u2}"
                );
            }
            (Some(fast), Err(e)) => panic!("{u2}: fast path gave {fast}, Url::parse {e}"),
        }
        // The same URL through its own cached origin.
        assert_same(&cached(&u1).unwrap_or_else(|| full1.clone()), &full1, first);
    }

    const ORIGINS: &[&str] = &[
        "http://127.0.0.1:18181",
        "http://h",
        "https://EXAMPLE.com",
        "HTTP://Example.COM",
        "http://example.com:80",
        "https://example.com:443",
        "http://example.com:443",
        "https://x.test:8080",
        "http://h:0080",
        "http://h:",
        "http://h:65535",
        "http://h:65536",
        "http://[::1]",
        "http://[::1]:8080",
        "http://[0:0::1]",
        "https://[::FFFF:127.0.0.1]:1",
        "http://[fe80::1%25eth0]",
        "http://user@h",
        "http://user:pw@h:1",
        "http://@h",
        "http://xn--caf-dma.test",
        "http://ex%41mple.com",
        "http://a_b.test",
        "http://0x7f.1",
        "http://127.1",
        "http://999.1.1.1",
        "http://1.2.3.4.5",
        "http://a..b",
        "http://-a.test",
        "http://h.test.",
        "http://a.b-c.d9:1",
        "http://xn--a.test",
        "http://EXAMPLE.xn--p1ai",
        "http://a%2eb",
        "ws://h",
        "ftp://h",
    ];

    const PIECES: &[&str] = &[
        "/", "a", "Z", "0", ".", "..", "%2e", "%2E", "%2e%2E", ".%2e", "%", "%2", "%zz", "%41",
        "\\", " ", "\t", "\n", "\r", "?", "#", "~", "\"", "{", "}", "|", "^", "`", "<", ">", "[",
        "]", "@", ":", ";", "=", "&", "+", ",", "'", "!", "$", "*", "(", ")", "é", "日本",
        "\u{7f}", "\0", "\u{1}", "\u{ff}", "\u{feff}", "//", "/./", "/../", "?x=1&y=2", "=", "%00",
        "%C3%A9", "ſ", "K",
    ];

    fn path_and_query() -> impl Strategy<Value = String> {
        let piece = proptest::sample::select(PIECES);
        (
            prop_oneof![Just(""), Just("/"), Just("?"), Just("//"), Just("\\")],
            proptest::collection::vec(piece, 0..24),
        )
            .prop_map(|(lead, pieces)| {
                let mut s = lead.to_owned();
                for p in pieces {
                    s.push_str(p);
                }
                s
            })
    }

    fn raw_path_and_query() -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<char>(), 0..40)
            .prop_map(|cs| std::iter::once('/').chain(cs).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        #[test]
        fn cached_url_is_url_parse(
            origin in proptest::sample::select(ORIGINS),
            first in path_and_query(),
            second in path_and_query(),
        ) {
            check_pair(origin, &first, &second);
        }

        #[test]
        fn cached_url_is_url_parse_any_chars(
            origin in proptest::sample::select(ORIGINS),
            first in raw_path_and_query(),
            second in raw_path_and_query(),
        ) {
            check_pair(origin, &first, &second);
        }

        #[test]
        fn cached_url_is_url_parse_ascii_bytes(
            origin in proptest::sample::select(ORIGINS),
            bytes in proptest::collection::vec(0u8..0x80, 0..40),
        ) {
            let second: String = std::iter::once('/').chain(bytes.into_iter().map(char::from)).collect();
            check_pair(origin, "/", &second);
        }
    }

    /// Every origin with every short path from the pieces above, and the
    /// pieces pairwise.
    #[test]
    fn exhaustive_short_paths() {
        for origin in ORIGINS {
            for lead in ["", "/", "?", "/a/b/"] {
                for a in PIECES {
                    check_pair(origin, "/x?y", &format!("{lead}{a}"));
                    for b in PIECES {
                        check_pair(origin, "", &format!("{lead}{a}{b}"));
                    }
                }
            }
        }
    }

    #[test]
    fn named_cases() {
        let long_path = format!("/{}", "seg/".repeat(8000));
        let long_query = format!("/p?{}", "k=v&".repeat(8000));
        let long_host = format!("http://{}.test", "a".repeat(250));
        for (origin, pq) in [
            ("http://127.0.0.1:18181", "/"),
            ("http://127.0.0.1:18181", ""),
            ("http://h", "?"),
            ("http://h", "/?"),
            ("http://h", "/p?"),
            ("http://h", "/?#"),
            ("http://[::1]", ":"),
            ("http://h", "/a/./b/../c/%2e/%2E%2e/d"),
            ("http://h", "/../../.."),
            ("http://h", "/a/b/.."),
            ("http://h", "/a/b/%2e%2e"),
            ("http://h", "/a\\b\\..\\c"),
            ("http://h", "/caf%C3%A9?q=%20&r=caf\u{e9}"),
            ("http://h", "/caf\u{e9}/\u{65e5}?\u{65e5}=1"),
            ("http://h", "/p#frag"),
            ("http://h", "/p?q#frag"),
            ("http://h", "//double//slash"),
            ("http://h", "/p?q=a?b/c"),
            ("http://h", "/p?'\"<>`"),
            ("http://h", "/{}|^`\"<>"),
            ("http://user:pw@h", "/p"),
            ("http://[::1]:8080", "/v6?x"),
            ("https://EXAMPLE.COM:443", "/UP"),
            ("http://h", &long_path),
            ("http://h", &long_query),
            (&long_host, "/p?q"),
        ] {
            check_pair(origin, "/", pq);
            check_pair(origin, pq, pq);
            check_pair(origin, pq, "/other?x");
        }
    }

    #[test]
    fn more_origins_than_slots_evict_but_stay_exact() {
        clear();
        let origins: Vec<String> = (0..3 * SLOTS)
            .map(|i| format!("http://h{i}.test:{}", 1000 + i))
            .collect();
        for round in 0..3 {
            for (i, o) in origins.iter().enumerate() {
                let uri: Uri = format!("{o}/r{round}/{i}?q={i}").parse().unwrap();
                let full = reference(&uri).unwrap();
                let url = match cached(&uri) {
                    Some(url) => url,
                    None => {
                        remember(&uri, &full);
                        full.clone()
                    }
                };
                assert_same(&url, &full, o);
            }
        }
        let kept = CACHE.with_borrow(|c| c.entries.iter().flatten().count());
        assert_eq!(kept, SLOTS);
        // The last SLOTS origins are the ones kept.
        for o in &origins[origins.len() - SLOTS..] {
            let uri: Uri = format!("{o}/again").parse().unwrap();
            assert_same(
                &cached(&uri).expect("recent origin cached"),
                &reference(&uri).unwrap(),
                o,
            );
        }
        let uri: Uri = format!("{}/again", origins[0]).parse().unwrap();
        assert!(cached(&uri).is_none());
    }

    #[test]
    fn long_origins_are_not_cached() {
        clear();
        let o = format!("http://{}.test", "a".repeat(MAX_ORIGIN));
        let uri: Uri = format!("{o}/p").parse().unwrap();
        let full = reference(&uri).unwrap();
        remember(&uri, &full);
        assert!(cached(&uri).is_none());
    }

    #[test]
    fn each_thread_has_its_own_cache() {
        clear();
        let uri: Uri = "http://h.test/p".parse().unwrap();
        remember(&uri, &reference(&uri).unwrap());
        assert!(cached(&uri).is_some());
        std::thread::spawn(move || {
            assert!(cached(&uri).is_none());
            remember(&uri, &reference(&uri).unwrap());
            assert_same(&cached(&uri).unwrap(), &reference(&uri).unwrap(), "thread");
        })
        .join()
        .unwrap();
    }
}
