//! URLs of the four schemes the network layer speaks (`ws`, `wss`, `http`, `https`): scheme,
//! host, port and request target, parsed by hand.
//!
//! Owns parsing only. Never resolves names (that happens at connect time) and never accepts what
//! it could not send exactly: credentials, an empty host, a bad port, spaces or control
//! characters are errors that quote the URL.

use std::fmt;
use std::net::Ipv6Addr;

/// A URL scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `ws://`, WebSocket over plain TCP.
    Ws,
    /// `wss://`, WebSocket over TLS.
    Wss,
    /// `http://`.
    Http,
    /// `https://`.
    Https,
}

impl Scheme {
    /// True for `wss` and `https`.
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Wss | Scheme::Https)
    }

    /// True for `ws` and `wss`.
    pub fn is_websocket(self) -> bool {
        matches!(self, Scheme::Ws | Scheme::Wss)
    }

    /// 80 or 443.
    pub fn default_port(self) -> u16 {
        if self.is_tls() { 443 } else { 80 }
    }

    /// The scheme as written, lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A URL that failed to parse, quoted, with what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed URL {url:?}: {reason}")]
pub struct UrlError {
    /// The URL as given.
    pub url: String,
    /// What was wrong with it.
    pub reason: &'static str,
}

/// A parsed URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    scheme: Scheme,
    host: String,
    port: u16,
    target: String,
    /// The `Host` header value, formed once (a reconnection sends it without allocating).
    host_header: String,
}

impl Url {
    /// Parses `scheme://host[:port][/path][?query][#fragment]`; IPv6 literals in brackets.
    /// The fragment is dropped (never sent); the target defaults to `/`.
    pub fn parse(url: &str) -> Result<Url, UrlError> {
        let err = |reason| UrlError {
            url: url.to_owned(),
            reason,
        };
        if url
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(err("contains whitespace or control characters"));
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| err("no scheme (expected ws://, wss://, http:// or https://)"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "ws" => Scheme::Ws,
            "wss" => Scheme::Wss,
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(err("scheme must be ws, wss, http or https")),
        };
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        let target = if target.is_empty() {
            "/".to_owned()
        } else if target.starts_with('?') {
            format!("/{target}")
        } else {
            target.to_owned()
        };
        if authority.contains('@') {
            return Err(err("credentials in the URL are not supported"));
        }
        if authority.is_empty() {
            return Err(err("missing host"));
        }
        let (host, port) = if let Some(after_bracket) = authority.strip_prefix('[') {
            let (inside, after) = after_bracket
                .split_once(']')
                .ok_or_else(|| err("unclosed '[' in IPv6 host"))?;
            if inside.parse::<Ipv6Addr>().is_err() {
                return Err(err("invalid IPv6 address in brackets"));
            }
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| err("unexpected text after ']'"))?,
                ),
            };
            (inside, port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => {
                    if p.contains(':') {
                        return Err(err("IPv6 hosts must be in brackets"));
                    }
                    (h, Some(p))
                }
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(err("missing host"));
        }
        let port = match port {
            None => scheme.default_port(),
            Some(p) => match p.parse::<u16>() {
                Ok(0) => return Err(err("port 0 is not a destination")),
                Ok(n) if p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(err("port is not a number in 1..=65535")),
            },
        };
        let host_header = {
            let h = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.to_owned()
            };
            if port == scheme.default_port() {
                h
            } else {
                format!("{h}:{port}")
            }
        };
        Ok(Url {
            scheme,
            host: host.to_owned(),
            port,
            target,
            host_header,
        })
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host, without brackets for IPv6 literals (as DNS, TLS SNI and `ToSocketAddrs` want it).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (the scheme's default when absent).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The request target: path and query, starting with `/`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The `Host` header value: the host (bracketed if IPv6) and the port unless it is the
    /// scheme's default.
    pub fn host_header(&self) -> &str {
        &self.host_header
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme.as_str(),
            self.host_header(),
            self.target
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_venues_use() {
        let u = Url::parse("wss://www.deribit.com/ws/api/v2").unwrap();
        assert_eq!(
            (u.scheme(), u.host(), u.port(), u.target()),
            (Scheme::Wss, "www.deribit.com", 443, "/ws/api/v2")
        );
        assert_eq!(u.host_header(), "www.deribit.com");
        let u = Url::parse("ws://127.0.0.1:9443/stream?streams=btcusdt@bookTicker#frag").unwrap();
        assert_eq!(
            (u.scheme(), u.host(), u.port(), u.target()),
            (
                Scheme::Ws,
                "127.0.0.1",
                9443,
                "/stream?streams=btcusdt@bookTicker"
            )
        );
        assert_eq!(u.host_header(), "127.0.0.1:9443");
        assert_eq!(
            u.to_string(),
            "ws://127.0.0.1:9443/stream?streams=btcusdt@bookTicker"
        );
        let u = Url::parse("HTTPS://[::1]:8443?x=1").unwrap();
        assert_eq!((u.host(), u.port(), u.target()), ("::1", 8443, "/?x=1"));
        assert_eq!(u.host_header(), "[::1]:8443");
        let u = Url::parse("http://example.com").unwrap();
        assert_eq!((u.port(), u.target()), (80, "/"));
    }

    #[test]
    fn rejects_with_the_url_and_the_reason() {
        for (url, reason) in [
            ("example.com/ws", "no scheme"),
            ("ftp://example.com", "scheme must be"),
            ("ws://", "missing host"),
            ("ws://:80/", "missing host"),
            ("ws://user:pw@host/", "credentials"),
            ("ws://host:0/", "port 0"),
            ("ws://host:99999/", "port is not a number"),
            ("ws://host:+80/", "port is not a number"),
            ("ws://host:/", "port is not a number"),
            ("ws://::1/", "IPv6 hosts must be in brackets"),
            ("ws://[::1/", "unclosed"),
            ("ws://[nothex]/", "invalid IPv6"),
            ("ws://[::1]x/", "unexpected text"),
            ("ws://host/a b", "whitespace"),
            ("ws://host/\r\nX: y", "whitespace"),
        ] {
            let e = Url::parse(url).expect_err(url);
            assert_eq!(e.url, url);
            assert!(e.reason.contains(reason), "{url}: {e}");
            assert!(e.to_string().contains(&format!("{url:?}")), "{e}");
        }
    }
}
