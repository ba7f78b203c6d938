//! Pre-signed ladders: for one on-chain hedge instrument, EIP-1559 transactions at one nonce for
//! a set of sizes on each side (`lot·2^i`, i = 0..rungs), signed ahead of time off the hot path,
//! each with its finished request bytes for every route.
//!
//! A rung holds:
//! 1. the raw EIP-2718 transaction (the same bytes on every route: one nonce, so at most one
//!    copy can land — the racing rule of `shared/fixtures/venues/README.md`);
//! 2. per RPC endpoint, the whole `eth_sendRawTransaction` HTTP/1.1 request (head and JSON body);
//! 3. per block builder, the whole `eth_sendBundle` request: a one-transaction bundle for the
//!    ladder's target block, with its `X-Flashbots-Signature` header already signed by the
//!    reputation key (a k256 signature costs ~50 µs: never on the hot path; the signer re-signs
//!    bundles when the head block advances).
//!
//! The hot path only [`Ladder::pick`]s a rung and writes [`Rung::request`] bytes.
//!
//! # Calldata
//!
//! A [`CallTemplate`] is a generic "ABI call with the amount at word k": the router (or perp-DEX)
//! address, the full calldata of the call for that side (4-byte selector then 32-byte words,
//! usually signed once with a zero amount), and the index `k` of the `uint256` word that holds the
//! amount; the rung writes `lot_units·2^i` there (big-endian). Side-dependent selectors and
//! parameters come from the two templates (`buy`, `sell`). Native value, if any, is the
//! template's `value` (fixed per side).
//!
//! # Never
//!
//! Nothing here runs on the hot path except [`Ladder::pick`], [`Rung::request`] and
//! [`Ladder::try_fire`], which neither allocate nor lock. A ladder is immutable once built except
//! for its `fired` flag: a ladder is fired at most once (one nonce, one decision).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use alloy_primitives::{Address, Bytes, U256};
use keel_feeds::event::Side;
use keel_feeds::net::url::{Scheme, Url};

use super::tx::Eip1559Fields;
use super::{EvmError, EvmSigner, FLASHBOTS_SIGNATURE_HEADER, FlashbotsSigner, SignedTx};

/// Most rungs per side.
pub const MAX_RUNGS: u8 = 24;

/// An ABI call with the amount in one `uint256` word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallTemplate {
    /// The contract called (DEX router, perp-DEX).
    pub to: Address,
    /// Full calldata: 4-byte selector, then 32-byte words; the amount word's content is replaced.
    pub calldata: Bytes,
    /// Index of the amount word after the selector (byte offset `4 + 32·k`).
    pub amount_word: usize,
    /// Native value sent with the call, wei.
    pub value: U256,
}

impl CallTemplate {
    /// A template, checked: the calldata must hold the selector and word `amount_word`.
    pub fn new(
        to: Address,
        calldata: Bytes,
        amount_word: usize,
        value: U256,
    ) -> Result<Self, EvmError> {
        let need = 4 + 32 * (amount_word + 1);
        if calldata.len() < need {
            return Err(EvmError::field(
                "calldata template",
                format!("{} bytes", calldata.len()),
                format!("amount word {amount_word} needs at least {need} bytes (selector + words)"),
            ));
        }
        if !(calldata.len() - 4).is_multiple_of(32) {
            return Err(EvmError::field(
                "calldata template",
                format!("{} bytes", calldata.len()),
                "not a 4-byte selector followed by whole 32-byte words",
            ));
        }
        Ok(Self {
            to,
            calldata,
            amount_word,
            value,
        })
    }

    /// The calldata with `units` in the amount word.
    pub fn calldata_for(&self, units: U256) -> Bytes {
        let mut d = self.calldata.to_vec();
        let at = 4 + 32 * self.amount_word;
        d[at..at + 32].copy_from_slice(&units.to_be_bytes::<32>());
        Bytes::from(d)
    }
}

/// What one instrument's ladders are made of (fixed for a run; the nonce, fee cap and target
/// block vary per ladder).
#[derive(Clone, Debug, PartialEq)]
pub struct LadderSpec {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Gas limit of every rung.
    pub gas_limit: u64,
    /// Tip per gas, wei.
    pub max_priority_fee_per_gas: u128,
    /// The buy call.
    pub buy: CallTemplate,
    /// The sell call.
    pub sell: CallTemplate,
    /// Size of rung 0 in the intent's unit (`HedgeIntent::amount`).
    pub lot: f64,
    /// Size of rung 0 as the contract's integer amount (token base units).
    pub lot_units: U256,
    /// Rungs per side: sizes `lot·2^i`, i = 0..rungs.
    pub rungs: u8,
}

impl LadderSpec {
    /// Checks the sizes.
    pub fn validate(&self) -> Result<(), EvmError> {
        if !(self.lot.is_finite() && self.lot > 0.0) {
            return Err(EvmError::field(
                "ladder lot",
                self.lot.to_string(),
                "must be > 0",
            ));
        }
        if self.lot_units.is_zero() {
            return Err(EvmError::field("ladder lot units", "0", "must be > 0"));
        }
        if self.rungs == 0 || self.rungs > MAX_RUNGS {
            return Err(EvmError::field(
                "ladder rungs",
                self.rungs.to_string(),
                format!("must be 1..={MAX_RUNGS}"),
            ));
        }
        if self.lot_units.bit_len() + usize::from(self.rungs) > 256 {
            return Err(EvmError::field(
                "ladder lot units",
                self.lot_units.to_string(),
                "the largest rung overflows uint256",
            ));
        }
        Ok(())
    }
}

/// How a route takes the transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    /// A JSON-RPC node: `eth_sendRawTransaction`.
    Rpc,
    /// A block builder: `eth_sendBundle` with `X-Flashbots-Signature`.
    Builder,
}

/// One route's request target.
#[derive(Clone, Debug)]
pub struct RouteTarget {
    /// RPC or builder.
    pub kind: RouteKind,
    /// `http://` or `https://` URL of the endpoint.
    pub url: Url,
}

impl RouteTarget {
    /// Parses an endpoint URL (http or https).
    pub fn parse(kind: RouteKind, url: &str) -> Result<Self, EvmError> {
        let flag = match kind {
            RouteKind::Rpc => "--rpc-url",
            RouteKind::Builder => "--builder-url",
        };
        let u = Url::parse(url).map_err(|e| EvmError::field(flag, url, e.to_string()))?;
        if !matches!(u.scheme(), Scheme::Http | Scheme::Https) {
            return Err(EvmError::field(flag, url, "not an http:// or https:// URL"));
        }
        Ok(Self { kind, url: u })
    }

    /// Route name for reports: `rpc host:port` or `builder host:port`.
    pub fn name(&self) -> String {
        let k = match self.kind {
            RouteKind::Rpc => "rpc",
            RouteKind::Builder => "builder",
        };
        format!("{k} {}:{}", self.url.host(), self.url.port())
    }
}

/// One size on one side: the signed transaction and its request bytes per route.
#[derive(Debug)]
pub struct Rung {
    /// Size in the intent's unit.
    pub amount: f64,
    /// Size as the contract's integer amount.
    pub units: U256,
    /// The signed transaction.
    pub tx: SignedTx,
    requests: Box<[Box<[u8]>]>,
}

impl Rung {
    /// The request bytes for `route` (index into the routes the ladder was built for).
    #[inline]
    pub fn request(&self, route: usize) -> &[u8] {
        &self.requests[route]
    }
}

/// Transactions at one nonce, every size on both sides, with their request bytes.
#[derive(Debug)]
pub struct Ladder {
    /// The nonce every rung is signed at.
    pub nonce: u64,
    /// The fee cap every rung is signed with, wei per gas.
    pub max_fee_per_gas: u128,
    /// The block the bundles target (0 when there is no builder route).
    pub target_block: u64,
    buy: Box<[Rung]>,
    sell: Box<[Rung]>,
    has_builders: bool,
    fired: AtomicBool,
}

/// Why a rung was not built or picked: a ladder needs a Flashbots key to reach builders.
fn no_flashbots_key() -> EvmError {
    EvmError::field(
        "flashbots key",
        "(none)",
        "builder routes need a reputation key (--flashbots-key-env)",
    )
}

impl Ladder {
    /// Signs every rung at `nonce` with fee cap `max_fee_per_gas` and builds the requests for
    /// `routes` (bundles for `target_block`). Off the hot path: ~50 µs per signature, two per
    /// rung with builders (the transaction and the bundle's header, shared by every builder:
    /// the body is the same), one without.
    pub fn build(
        spec: &LadderSpec,
        routes: &[RouteTarget],
        signer: &EvmSigner,
        flashbots: Option<&FlashbotsSigner>,
        nonce: u64,
        max_fee_per_gas: u128,
        target_block: u64,
    ) -> Result<Ladder, EvmError> {
        spec.validate()?;
        let has_builders = routes.iter().any(|r| r.kind == RouteKind::Builder);
        if has_builders && flashbots.is_none() {
            return Err(no_flashbots_key());
        }
        let side = |t: &CallTemplate| -> Result<Box<[Rung]>, EvmError> {
            (0..spec.rungs)
                .map(|i| {
                    let units = spec.lot_units << usize::from(i);
                    let fields = Eip1559Fields {
                        chain_id: spec.chain_id,
                        nonce,
                        max_priority_fee_per_gas: spec.max_priority_fee_per_gas,
                        max_fee_per_gas,
                        gas_limit: spec.gas_limit,
                        to: Some(t.to),
                        value: t.value,
                        data: t.calldata_for(units),
                        access_list: Default::default(),
                    };
                    let tx = signer.sign_eip1559(&fields)?;
                    // Every builder gets the same body, so one header signature serves all.
                    let bundle = if has_builders {
                        let fb = flashbots.ok_or_else(no_flashbots_key)?;
                        let body = bundle_body(nonce, &tx.raw, target_block);
                        let sig = fb.header_value(body.as_bytes())?;
                        Some((body, sig))
                    } else {
                        None
                    };
                    let requests = routes
                        .iter()
                        .map(|r| match (r.kind, &bundle) {
                            (RouteKind::Builder, Some((body, sig))) => Ok(http_post(
                                &r.url,
                                body,
                                Some((FLASHBOTS_SIGNATURE_HEADER, sig.as_str())),
                            )
                            .into_boxed_slice()),
                            (RouteKind::Builder, None) => Err(no_flashbots_key()),
                            (RouteKind::Rpc, _) => {
                                Ok(rpc_request(&r.url, nonce, &tx.raw).into_boxed_slice())
                            }
                        })
                        .collect::<Result<Vec<_>, EvmError>>()?
                        .into_boxed_slice();
                    Ok(Rung {
                        amount: spec.lot * f64::from(1u32 << i),
                        units,
                        tx,
                        requests,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Vec::into_boxed_slice)
        };
        Ok(Ladder {
            nonce,
            max_fee_per_gas,
            target_block: if has_builders { target_block } else { 0 },
            buy: side(&spec.buy)?,
            sell: side(&spec.sell)?,
            has_builders,
            fired: AtomicBool::new(false),
        })
    }

    /// The rungs of one side, smallest first.
    pub fn rungs(&self, side: Side) -> &[Rung] {
        match side {
            Side::Buy => &self.buy,
            Side::Sell => &self.sell,
        }
    }

    /// Whether bundles (with a target block) are among the requests.
    pub fn has_builders(&self) -> bool {
        self.has_builders
    }

    /// The rung nearest `amount` on `side` whose size does not exceed `max_amount` (the risk
    /// limit per order); ties go to the smaller rung. `None` when every rung is above the limit
    /// or `amount` is not a positive number. Never allocates.
    #[inline]
    pub fn pick(&self, side: Side, amount: f64, max_amount: f64) -> Option<(usize, &Rung)> {
        if !(amount.is_finite() && amount > 0.0) {
            return None;
        }
        let mut best: Option<(usize, &Rung)> = None;
        for (i, r) in self.rungs(side).iter().enumerate() {
            if r.amount > max_amount {
                break;
            }
            let better = match best {
                None => true,
                Some((_, b)) => (r.amount - amount).abs() < (b.amount - amount).abs(),
            };
            if better {
                best = Some((i, r));
            }
        }
        best
    }

    /// Claims the ladder for one decision: true the first time only (a nonce serves one
    /// decision; a fired ladder is never sent again).
    #[inline]
    pub fn try_fire(&self) -> bool {
        self.fired
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Whether the ladder has been fired.
    pub fn is_fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }
}

/// Hex of `bytes` with `0x`, appended to `out`.
fn push_hex(out: &mut String, bytes: &[u8]) {
    out.push_str("0x");
    out.push_str(&alloy_primitives::hex::encode(bytes));
}

/// The HTTP/1.1 POST of a JSON body (keep-alive, the default of HTTP/1.1).
fn http_post(url: &Url, body: &str, extra_header: Option<(&str, &str)>) -> Vec<u8> {
    let mut head = String::with_capacity(256);
    // Writing into a String cannot fail.
    let _ = write!(
        head,
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n",
        url.target(),
        url.host_header()
    );
    if let Some((name, value)) = extra_header {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    let _ = write!(head, "Content-Length: {}\r\n\r\n", body.len());
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// The JSON body of `eth_sendRawTransaction` (JSON-RPC id `id`).
pub fn rpc_body(id: u64, raw: &[u8]) -> String {
    let mut b = String::with_capacity(96 + 2 * raw.len());
    let _ = write!(
        b,
        r#"{{"jsonrpc":"2.0","id":{id},"method":"eth_sendRawTransaction","params":[""#
    );
    push_hex(&mut b, raw);
    b.push_str("\"]}");
    b
}

/// The JSON body of a one-transaction `eth_sendBundle` for `block` (JSON-RPC id `id`).
pub fn bundle_body(id: u64, raw: &[u8], block: u64) -> String {
    let mut b = String::with_capacity(128 + 2 * raw.len());
    let _ = write!(
        b,
        r#"{{"jsonrpc":"2.0","id":{id},"method":"eth_sendBundle","params":[{{"txs":[""#
    );
    push_hex(&mut b, raw);
    let _ = write!(b, r#""],"blockNumber":"{block:#x}"}}]}}"#);
    b
}

/// A whole `eth_sendRawTransaction` request.
pub fn rpc_request(url: &Url, id: u64, raw: &[u8]) -> Vec<u8> {
    http_post(url, &rpc_body(id, raw), None)
}

/// A whole `eth_sendBundle` request with its `X-Flashbots-Signature` header.
pub fn bundle_request(
    url: &Url,
    id: u64,
    raw: &[u8],
    block: u64,
    flashbots: &FlashbotsSigner,
) -> Result<Vec<u8>, EvmError> {
    let body = bundle_body(id, raw, block);
    let sig = flashbots.header_value(body.as_bytes())?;
    Ok(http_post(
        url,
        &body,
        Some((FLASHBOTS_SIGNATURE_HEADER, sig.as_str())),
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const KEY: &str = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
    const FB: &str = "0x0000000000000000000000000000000000000000000000000000000000000001";

    fn template(selector: [u8; 4], words: usize, k: usize) -> CallTemplate {
        let mut d = selector.to_vec();
        d.resize(4 + 32 * words, 0x11);
        CallTemplate::new(Address::repeat_byte(0xaa), Bytes::from(d), k, U256::ZERO).unwrap()
    }

    pub(crate) fn spec() -> LadderSpec {
        LadderSpec {
            chain_id: 1,
            gas_limit: 250_000,
            max_priority_fee_per_gas: 2_000_000_000,
            buy: template([1, 2, 3, 4], 3, 1),
            sell: template([5, 6, 7, 8], 3, 0),
            lot: 0.01,
            lot_units: U256::from(10u64.pow(16)),
            rungs: 6,
        }
    }

    fn routes() -> Vec<RouteTarget> {
        vec![
            RouteTarget::parse(RouteKind::Rpc, "http://127.0.0.1:8545/").unwrap(),
            RouteTarget::parse(RouteKind::Builder, "http://127.0.0.1:9000/relay").unwrap(),
        ]
    }

    #[test]
    fn templates_are_checked_and_filled() {
        let short = CallTemplate::new(Address::ZERO, Bytes::from(vec![0; 36]), 1, U256::ZERO);
        assert!(short.unwrap_err().to_string().contains("amount word 1"));
        let ragged = CallTemplate::new(Address::ZERO, Bytes::from(vec![0; 40]), 0, U256::ZERO);
        assert!(ragged.unwrap_err().to_string().contains("32-byte words"));
        let t = template([1, 2, 3, 4], 3, 1);
        let d = t.calldata_for(U256::from(0x0102u64));
        assert_eq!(&d[..4], &[1, 2, 3, 4]);
        assert_eq!(&d[4..36], &[0x11; 32]);
        assert_eq!(&d[36..66], &[0; 30]);
        assert_eq!(&d[66..68], &[1, 2]);
        assert_eq!(&d[68..], &[0x11; 32]);
    }

    #[test]
    fn a_ladder_signs_every_rung_at_one_nonce_with_requests_per_route() {
        let key = EvmSigner::from_hex(KEY, "test").unwrap();
        let fb = FlashbotsSigner::new(EvmSigner::from_hex(FB, "test fb").unwrap());
        let l = Ladder::build(&spec(), &routes(), &key, Some(&fb), 7, 60_000_000_000, 101).unwrap();
        assert_eq!(l.rungs(Side::Buy).len(), 6);
        for side in [Side::Buy, Side::Sell] {
            for (i, r) in l.rungs(side).iter().enumerate() {
                let d = super::super::decode(&r.tx.raw).unwrap();
                assert_eq!(d.fields.nonce, 7);
                assert_eq!(d.from, key.address());
                assert_eq!(d.fields.max_fee_per_gas, 60_000_000_000);
                assert_eq!(r.units, U256::from(10u64.pow(16)) << i);
                let rpc = std::str::from_utf8(r.request(0)).unwrap();
                assert!(rpc.starts_with("POST / HTTP/1.1\r\nHost: 127.0.0.1:8545\r\n"));
                assert!(rpc.contains(&alloy_primitives::hex::encode(&r.tx.raw)));
                let b = std::str::from_utf8(r.request(1)).unwrap();
                assert!(b.starts_with("POST /relay HTTP/1.1\r\n"), "{b}");
                assert!(b.contains("X-Flashbots-Signature: 0x"));
                assert!(b.contains(r#""blockNumber":"0x65""#));
                let (head, body) = b.split_once("\r\n\r\n").unwrap();
                assert!(head.contains(&format!("Content-Length: {}", body.len())));
            }
        }
        assert!(l.try_fire());
        assert!(!l.try_fire(), "a ladder fires once");
    }

    #[test]
    fn builders_need_a_flashbots_key() {
        let key = EvmSigner::from_hex(KEY, "test").unwrap();
        let e = Ladder::build(&spec(), &routes(), &key, None, 0, 1, 1).unwrap_err();
        assert!(e.to_string().contains("flashbots"), "{e}");
    }

    #[test]
    fn pick_is_nearest_within_the_limit() {
        let key = EvmSigner::from_hex(KEY, "test").unwrap();
        let l = Ladder::build(&spec(), &routes()[..1], &key, None, 0, 10u128.pow(11), 0).unwrap();
        let amt = |a: f64, max: f64| l.pick(Side::Sell, a, max).map(|(_, r)| r.amount);
        // Rungs: 0.01 0.02 0.04 0.08 0.16 0.32.
        assert_eq!(amt(0.05, 1.0), Some(0.04));
        assert_eq!(amt(0.07, 1.0), Some(0.08));
        assert_eq!(amt(0.03, 1.0), Some(0.02), "a tie goes to the smaller rung");
        assert_eq!(amt(5.0, 1.0), Some(0.32));
        assert_eq!(amt(0.07, 0.05), Some(0.04), "never above the risk limit");
        assert_eq!(amt(0.07, 0.001), None);
        assert_eq!(amt(f64::NAN, 1.0), None);
        assert_eq!(amt(-1.0, 1.0), None);
        assert_eq!(amt(0.0001, 1.0), Some(0.01));
    }

    #[test]
    fn spec_limits() {
        let mut s = spec();
        s.rungs = 0;
        assert!(s.validate().unwrap_err().to_string().contains("rungs"));
        let mut s = spec();
        s.lot = -1.0;
        assert!(s.validate().is_err());
        let mut s = spec();
        s.lot_units = U256::MAX;
        assert!(s.validate().unwrap_err().to_string().contains("overflows"));
    }
}
