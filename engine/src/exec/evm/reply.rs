//! What a node's or builder's answer to one copy means: [`classify`] turns the HTTP status and
//! the JSON-RPC reply body into a [`CopyOutcome`] for the race table.
//!
//! | reply | outcome |
//! | --- | --- |
//! | status not 2xx | `Error` (HTTP error) |
//! | not JSON, not an object with `result` or `error`, wrong `id` | `Error` (malformed) |
//! | `result` non-null (tx hash, or `{"bundleHash": ...}`); a tx hash must be the rung's | `Accepted` |
//! | `error` whose message says the nonce or transaction is already taken ("nonce too low", "already known", "known transaction", "duplicate", "replacement transaction underpriced", "already imported") | `Duplicate` |
//! | any other `error` (signature, chain id, funds, fee cap) | `Rejected` |
//!
//! Never allocates (serde_json into borrowed fields; an error message with escapes is compared
//! as raw text), never panics on any input (fuzzed by the property test below).

use alloy_primitives::B256;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::exec::race::CopyOutcome;

/// Why a reply was not a clean acceptance or refusal (for counters and the log off the hot
/// path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyFault {
    /// None: the reply was understood.
    None,
    /// HTTP status outside 2xx.
    HttpStatus(u16),
    /// The body is not a JSON-RPC reply.
    Malformed,
    /// The reply's id is not the request's.
    WrongId,
    /// `eth_sendRawTransaction` answered a hash that is not the transaction's.
    WrongHash,
}

/// A classified reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classified {
    /// What the copy came to.
    pub outcome: CopyOutcome,
    /// The JSON-RPC error code when refused (0 otherwise).
    pub code: i64,
    /// What was wrong, for an `Error`.
    pub fault: ReplyFault,
}

#[derive(Deserialize)]
struct Reply<'a> {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default, borrow)]
    result: Option<ResultField<'a>>,
    #[serde(default, borrow)]
    error: Option<ErrorField<'a>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ResultField<'a> {
    Text(&'a str),
    Other(IgnoredAny),
}

#[derive(Deserialize)]
struct ErrorField<'a> {
    #[serde(default)]
    code: i64,
    #[serde(default, borrow)]
    message: Option<Message<'a>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Message<'a> {
    Plain(&'a str),
    // A message with escapes cannot borrow; it is still a refusal, matched on no phrase.
    Escaped(IgnoredAny),
}

const DUPLICATE_PHRASES: [&[u8]; 7] = [
    b"nonce too low",
    b"already known",
    b"known transaction",
    b"duplicate",
    b"replacement transaction underpriced",
    b"already imported",
    b"nonce already used",
];

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

fn hex_is(text: &str, want: &B256) -> bool {
    let Some(h) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) else {
        return false;
    };
    if h.len() != 64 {
        return false;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    h.as_bytes()
        .chunks_exact(2)
        .zip(want.as_slice())
        .all(|(p, &b)| matches!((nib(p[0]), nib(p[1])), (Some(a), Some(c)) if (a << 4 | c) == b))
}

fn error(fault: ReplyFault) -> Classified {
    Classified {
        outcome: CopyOutcome::Error,
        code: 0,
        fault,
    }
}

/// Classifies the reply to a request sent with JSON-RPC id `id`. `tx_hash` is the transaction's
/// hash for `eth_sendRawTransaction` (the answer must be it), `None` for a bundle.
pub fn classify(status: u16, body: &[u8], id: u64, tx_hash: Option<&B256>) -> Classified {
    if !(200..300).contains(&status) {
        return error(ReplyFault::HttpStatus(status));
    }
    let Ok(r) = serde_json::from_slice::<Reply<'_>>(body) else {
        return error(ReplyFault::Malformed);
    };
    if r.id != Some(id) {
        return error(ReplyFault::WrongId);
    }
    match (r.result, r.error) {
        (_, Some(e)) => {
            let dup = match e.message {
                Some(Message::Plain(m)) => DUPLICATE_PHRASES
                    .iter()
                    .any(|p| contains_ignore_case(m.as_bytes(), p)),
                _ => false,
            };
            Classified {
                outcome: if dup {
                    CopyOutcome::Duplicate
                } else {
                    CopyOutcome::Rejected
                },
                code: e.code,
                fault: ReplyFault::None,
            }
        }
        (Some(ResultField::Text(h)), None) => match tx_hash {
            Some(want) if !hex_is(h, want) => error(ReplyFault::WrongHash),
            _ => Classified {
                outcome: CopyOutcome::Accepted,
                code: 0,
                fault: ReplyFault::None,
            },
        },
        (Some(ResultField::Other(_)), None) if tx_hash.is_none() => Classified {
            outcome: CopyOutcome::Accepted,
            code: 0,
            fault: ReplyFault::None,
        },
        _ => error(ReplyFault::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const H: &str = "0x8a1f5e5b0c7f0b3b1f0a0d5c3e2f1a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f";

    fn hash() -> B256 {
        H.parse().unwrap()
    }

    #[test]
    fn replies_table() {
        use CopyOutcome::*;
        let h = hash();
        let rpc = Some(&h);
        let accepted = format!(r#"{{"jsonrpc":"2.0","id":7,"result":"{H}"}}"#);
        let upper = format!(
            r#"{{"jsonrpc":"2.0","id":7,"result":"0x{}"}}"#,
            H[2..].to_uppercase()
        );
        let cases: &[(u16, &str, Option<&B256>, CopyOutcome, ReplyFault)] = &[
            (200, &accepted, rpc, Accepted, ReplyFault::None),
            (200, &upper, rpc, Accepted, ReplyFault::None),
            (
                200,
                r#"{"jsonrpc":"2.0","id":7,"result":{"bundleHash":"0x01"}}"#,
                None,
                Accepted,
                ReplyFault::None,
            ),
            (
                200,
                r#"{"jsonrpc":"2.0","id":7,"result":"0x1234"}"#,
                rpc,
                Error,
                ReplyFault::WrongHash,
            ),
            (
                200,
                r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32000,"message":"nonce too low"}}"#,
                rpc,
                Duplicate,
                ReplyFault::None,
            ),
            (
                200,
                r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32000,"message":"Already Known"}}"#,
                rpc,
                Duplicate,
                ReplyFault::None,
            ),
            (
                200,
                r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32000,"message":"invalid sender"}}"#,
                rpc,
                Rejected,
                ReplyFault::None,
            ),
            (
                200,
                r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32000,"message":"bad \"sig\""}}"#,
                None,
                Rejected,
                ReplyFault::None,
            ),
            (
                200,
                r#"{"jsonrpc":"2.0","id":8,"result":"0x"}"#,
                None,
                Error,
                ReplyFault::WrongId,
            ),
            (
                200,
                r#"{"jsonrpc":"2.0","id":7}"#,
                None,
                Error,
                ReplyFault::Malformed,
            ),
            (
                200,
                r#"{"jsonrpc":"2.0","id":7,"result":null}"#,
                None,
                Error,
                ReplyFault::Malformed,
            ),
            (
                200,
                r#"{"jsonrpc":"2.0","id":7,"res"#,
                None,
                Error,
                ReplyFault::Malformed,
            ),
            (200, "", None, Error, ReplyFault::Malformed),
            // serde takes a struct from an array too: still an Error.
            (200, "[1,2]", None, Error, ReplyFault::WrongId),
            (500, &accepted, rpc, Error, ReplyFault::HttpStatus(500)),
            (429, "", rpc, Error, ReplyFault::HttpStatus(429)),
        ];
        for (status, body, want_hash, outcome, fault) in cases {
            let c = classify(*status, body.as_bytes(), 7, *want_hash);
            assert_eq!((c.outcome, c.fault), (*outcome, *fault), "{status} {body}");
        }
        let c = classify(
            200,
            br#"{"id":7,"error":{"code":-32010,"message":"x"}}"#,
            7,
            None,
        );
        assert_eq!(c.code, -32010);
    }

    proptest! {
        #[test]
        fn never_panics(status in 0u16..600, body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let h = hash();
            let _ = classify(status, &body, 7, Some(&h));
            let _ = classify(status, &body, 7, None);
        }
    }
}
