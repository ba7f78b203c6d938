//! HTTP/1.1 response heads (status line and header fields), shared by the WebSocket handshake
//! and the one-shot HTTP client.
//!
//! Owns parsing of bytes the caller has already framed (up to and including the blank line);
//! borrows them, never allocates except to describe an error, never panics on what the peer sent.

/// End of the head (index just past `\r\n\r\n`) in `buf`, if present.
pub(crate) fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// A response head that was not HTTP/1.x as expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// The status line is not `HTTP/1.x NNN reason`.
    #[error("bad status line {0:?}")]
    StatusLine(String),
    /// A header line is not `name: value`.
    #[error("bad header line {0:?}")]
    HeaderLine(String),
}

/// At most this many bytes of offending input are quoted in an error.
const QUOTE: usize = 80;

fn quote(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(QUOTE)]).into_owned()
}

/// A parsed response head borrowing its bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ResponseHead<'a> {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: &'a [u8],
    /// The header lines (validated), `\r\n`-separated, without the status line.
    fields: &'a [u8],
}

impl<'a> ResponseHead<'a> {
    /// Parses `head` (everything up to and including the blank line, or without it) and
    /// validates every header line.
    pub fn parse(head: &'a [u8]) -> Result<Self, HeadError> {
        let head = head.strip_suffix(b"\r\n\r\n").unwrap_or(head);
        let (status_line, fields) = match head.windows(2).position(|w| w == b"\r\n") {
            Some(i) => (&head[..i], &head[i + 2..]),
            None => (head, &head[head.len()..]),
        };
        let bad_status = || HeadError::StatusLine(quote(status_line));
        let rest = status_line
            .strip_prefix(b"HTTP/1.")
            .ok_or_else(bad_status)?;
        let (minor, rest) = rest.split_first().ok_or_else(bad_status)?;
        if !minor.is_ascii_digit() {
            return Err(bad_status());
        }
        let rest = rest.strip_prefix(b" ").ok_or_else(bad_status)?;
        let code = rest.get(..3).ok_or_else(bad_status)?;
        if !code.iter().all(u8::is_ascii_digit) {
            return Err(bad_status());
        }
        let status = code
            .iter()
            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
        let reason = match rest.get(3..) {
            None | Some(b"") => &[][..],
            Some(r) => r.strip_prefix(b" ").ok_or_else(bad_status)?,
        };
        let parsed = ResponseHead {
            status,
            reason,
            fields,
        };
        for line in parsed.lines() {
            split_field(line)?;
        }
        Ok(parsed)
    }

    fn lines(&self) -> impl Iterator<Item = &'a [u8]> {
        let fields = self.fields;
        fields
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| !l.is_empty())
    }

    /// Every header as (name, value), value trimmed of optional whitespace.
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        self.lines().filter_map(|l| split_field(l).ok())
    }

    /// The first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// True if some header `name` lists `token` (comma-separated, case-insensitive), as in
    /// `Connection: keep-alive, Upgrade`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .any(|(_, v)| {
                v.split(|&b| b == b',')
                    .any(|t| trim(t).eq_ignore_ascii_case(token.as_bytes()))
            })
    }
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn split_field(line: &[u8]) -> Result<(&[u8], &[u8]), HeadError> {
    let bad = || HeadError::HeaderLine(quote(line));
    let colon = line.iter().position(|&b| b == b':').ok_or_else(bad)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    // Field names are tokens: no whitespace (which also rejects obsolete line folding).
    if name.is_empty()
        || name
            .iter()
            .any(|&b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(bad());
    }
    Ok((name, trim(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_headers_case_insensitively() {
        let raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nconnection: keep-alive,  Upgrade \r\nX-Empty:\r\n\r\n";
        assert_eq!(find_head_end(raw), Some(raw.len()));
        let h = ResponseHead::parse(raw).unwrap();
        assert_eq!(h.status, 101);
        assert_eq!(h.reason, b"Switching Protocols");
        assert_eq!(h.header("UPGRADE"), Some(&b"WebSocket"[..]));
        assert_eq!(h.header("x-empty"), Some(&b""[..]));
        assert!(h.has_token("Connection", "upgrade"));
        assert!(!h.has_token("Connection", "close"));
        assert_eq!(h.headers().count(), 3);
        let h = ResponseHead::parse(b"HTTP/1.0 404\r\n\r\n").unwrap();
        assert_eq!((h.status, h.reason), (404, &b""[..]));
    }

    #[test]
    fn rejects_malformed_heads() {
        for raw in [
            &b"HTTP/2 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"HTTP/1.1  200 OK\r\n\r\n",
            b"HTTP/1.1 200OK\r\n\r\n",
            b"ICY 200 OK\r\n\r\n",
            b"",
        ] {
            assert!(
                matches!(ResponseHead::parse(raw), Err(HeadError::StatusLine(_))),
                "{raw:?}"
            );
        }
        for raw in [
            &b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n",
        ] {
            let e = ResponseHead::parse(raw).unwrap_err();
            assert!(matches!(e, HeadError::HeaderLine(_)), "{raw:?}: {e}");
        }
        assert_eq!(find_head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n"), None);
    }
}
