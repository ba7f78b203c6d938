//! The Hyperliquid signer thread: keeps a fresh [`HlLadder`] on the shelf for the exec tile.
//!
//! One [`HlSigner::step`] (every `poll`):
//! 1. read the coin's mid (`POST /info {"type":"allMids"}`, [`InfoMids`]);
//! 2. re-sign the whole ladder when there is none, when the exec tile fired a rung since the
//!    last signing (its nonce is spent: [`HlShelf::fired`]), when the ladder's nonces are
//!    `refresh_after_ms` old (Hyperliquid's nonce window; the exec tile refuses rungs older
//!    than its own limit, so a stale nonce is never sent), or when the mid moved more than
//!    `reprice_band` from the ladder's (the limits would no longer be marketable);
//! 3. publish it ([`SwapWriter::publish`]: the exec tile swaps it in without a lock).
//!
//! Between readings it looks at the fired counter every millisecond, so a spent rung is
//! replaced within about a millisecond plus the signing time. New nonces are the current
//! millisecond or just above the last one used, whichever is higher: unique and increasing.
//!
//! Owns the key (zeroized on drop, never printed). Allocates and blocks on HTTP: it runs on its
//! own thread, never the exec tile's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use keel_feeds::clock;
use keel_feeds::net::http::http_request;

use super::HyperliquidError;
use super::ladder::{HlLadder, HlLadderSpec};
use crate::exec::evm::EvmSigner;
use crate::exec::evm::shelf::{SwapCell, SwapWriter};
use crate::pipeline::StopFlag;

/// Where the signer's reference price comes from.
pub trait MidSource: Send {
    /// The coin's mid price now, or why not.
    fn mid(&mut self) -> Result<f64, String>;
}

/// Hyperliquid's `allMids` info request (`{"BTC":"37000.5",...}`).
#[derive(Debug, Clone)]
pub struct InfoMids {
    url: String,
    coin: String,
    timeout: Duration,
}

impl InfoMids {
    /// Reads `coin`'s mid from the info endpoint `url` (`…/info`).
    pub fn new(url: &str, coin: &str, timeout: Duration) -> Self {
        Self {
            url: url.to_string(),
            coin: coin.to_string(),
            timeout,
        }
    }
}

impl MidSource for InfoMids {
    fn mid(&mut self) -> Result<f64, String> {
        let (status, body) = http_request(
            &self.url,
            "POST",
            Some(br#"{"type":"allMids"}"#),
            &[("Content-Type", "application/json")],
            None,
            self.timeout,
        )
        .map_err(|e| format!("{} allMids: {e}", self.url))?;
        if !(200..300).contains(&status) {
            return Err(format!("{} allMids: HTTP status {status}", self.url));
        }
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| format!("{} allMids: reply is not JSON ({e})", self.url))?;
        let m = v
            .get(&self.coin)
            .and_then(|m| m.as_str())
            .and_then(|m| m.parse::<f64>().ok())
            .filter(|m| m.is_finite() && *m > 0.0)
            .ok_or_else(|| format!("{} allMids: no positive mid for {}", self.url, self.coin))?;
        Ok(m)
    }
}

/// What the signer and the exec tile share.
#[derive(Debug, Clone)]
pub struct HlShelf {
    /// The current ladder.
    pub ladders: Arc<SwapCell<HlLadder>>,
    /// Rungs the exec tile fired so far (each spent a nonce).
    pub fired: Arc<AtomicU64>,
}

/// The signer's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HlSignerConfig {
    /// The ladder.
    pub spec: HlLadderSpec,
    /// Re-sign a ladder whose nonces are this old, ms.
    pub refresh_after_ms: u64,
    /// Re-sign when the mid moved more than this fraction from the ladder's.
    pub reprice_band: f64,
    /// How often the mid is read.
    pub poll: Duration,
}

/// Counters of the signer thread.
#[derive(Debug, Default)]
pub struct HlSignerCounters {
    /// Ladders published.
    pub ladders: AtomicU64,
    /// Mid readings that failed.
    pub read_errors: AtomicU64,
    /// Signings that failed.
    pub sign_errors: AtomicU64,
}

/// The signer.
pub struct HlSigner {
    cfg: HlSignerConfig,
    key: EvmSigner,
    mids: Box<dyn MidSource>,
    writer: SwapWriter<HlLadder>,
    fired: Arc<AtomicU64>,
    seen_fired: u64,
    mid: Option<f64>,
    last_nonce: u64,
    generation: u64,
    counters: Arc<HlSignerCounters>,
}

impl std::fmt::Debug for HlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HlSigner")
            .field("address", &self.key.address())
            .finish_non_exhaustive()
    }
}

impl HlSigner {
    /// A signer and the shelf it fills (give the shelf to the exec tile).
    pub fn new(
        cfg: HlSignerConfig,
        key: EvmSigner,
        mids: Box<dyn MidSource>,
    ) -> Result<(Self, HlShelf), HyperliquidError> {
        cfg.spec.validate()?;
        if !(cfg.reprice_band.is_finite() && cfg.reprice_band > 0.0) {
            return Err(HyperliquidError::Action(
                "reprice band must be > 0".to_string(),
            ));
        }
        let (cell, writer) = SwapCell::new();
        let fired = Arc::new(AtomicU64::new(0));
        Ok((
            Self {
                cfg,
                key,
                mids,
                writer,
                fired: fired.clone(),
                seen_fired: 0,
                mid: None,
                last_nonce: 0,
                generation: 0,
                counters: Arc::default(),
            },
            HlShelf {
                ladders: cell,
                fired,
            },
        ))
    }

    /// The counters.
    pub fn counters(&self) -> Arc<HlSignerCounters> {
        self.counters.clone()
    }

    /// The ladder now on the shelf.
    pub fn current(&self) -> Option<Arc<HlLadder>> {
        self.writer.current()
    }

    /// The signing address.
    pub fn address(&self) -> alloy_primitives::Address {
        self.key.address()
    }

    /// Reads the mid (a failure is counted and the last mid kept), then [`Self::resign`].
    pub fn step(&mut self, now_ms: u64) -> Result<bool, HyperliquidError> {
        match self.mids.mid() {
            Ok(m) => self.mid = Some(m),
            Err(_) => {
                self.counters.read_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.resign(now_ms)
    }

    /// Re-signs the ladder if it is missing, fired, old or off the mid; true if it did.
    pub fn resign(&mut self, now_ms: u64) -> Result<bool, HyperliquidError> {
        self.writer.collect();
        let Some(mid) = self.mid else {
            return Ok(false);
        };
        let fired = self.fired.load(Ordering::Acquire);
        let need = match self.writer.current() {
            None => true,
            Some(l) => {
                fired != self.seen_fired
                    || now_ms.saturating_sub(l.first_nonce) >= self.cfg.refresh_after_ms
                    || (mid / l.mid - 1.0).abs() > self.cfg.reprice_band
            }
        };
        if !need {
            return Ok(false);
        }
        let first = now_ms.max(self.last_nonce + 1);
        self.generation += 1;
        match HlLadder::build(&self.cfg.spec, &self.key, mid, first, self.generation) {
            Ok(l) => {
                self.last_nonce = l.last_nonce();
                self.seen_fired = fired;
                self.writer.publish(l);
                self.counters.ladders.fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
            Err(e) => {
                self.counters.sign_errors.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Runs on its own thread until `stop`: a mid reading every `poll`, and a re-sign check
    /// every millisecond in between. Gives the signer back.
    pub fn spawn(mut self, stop: StopFlag) -> std::io::Result<JoinHandle<HlSigner>> {
        std::thread::Builder::new()
            .name("hl-signer".into())
            .spawn(move || {
                while !stop.is_stopped() {
                    let _ = self.step(clock::now_ns() / 1_000_000);
                    let until = std::time::Instant::now() + self.cfg.poll;
                    while !stop.is_stopped() && std::time::Instant::now() < until {
                        let _ = self.resign(clock::now_ns() / 1_000_000);
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                self
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::hyperliquid::Network;

    struct FixedMid(Arc<std::sync::Mutex<Result<f64, String>>>);
    impl MidSource for FixedMid {
        fn mid(&mut self) -> Result<f64, String> {
            self.0.lock().unwrap().clone()
        }
    }

    pub(crate) fn config() -> HlSignerConfig {
        HlSignerConfig {
            spec: HlLadderSpec {
                asset: 0,
                lot: 0.001,
                rungs: 2,
                sz_decimals: 5,
                slippage: 0.01,
                network: Network::Mainnet,
            },
            refresh_after_ms: 10_000,
            reprice_band: 0.005,
            poll: Duration::from_millis(50),
        }
    }

    #[test]
    fn re_signs_when_fired_old_or_off_the_mid_and_nonces_only_increase() {
        let key = EvmSigner::from_hex(&format!("0x{}", "55".repeat(32)), "t").unwrap();
        let mid = Arc::new(std::sync::Mutex::new(Err("down".to_string())));
        let (mut s, shelf) = HlSigner::new(config(), key, Box::new(FixedMid(mid.clone()))).unwrap();
        let t0 = 1_700_000_000_000u64;
        // No mid: no ladder.
        assert!(!s.step(t0).unwrap());
        assert!(shelf.ladders.load().is_none());
        assert_eq!(s.counters().read_errors.load(Ordering::Relaxed), 1);
        *mid.lock().unwrap() = Ok(50_000.0);
        assert!(s.step(t0).unwrap());
        let first = shelf.ladders.load_full_for_test();
        assert_eq!(
            (first.generation, first.first_nonce, first.last_nonce()),
            (1, t0, t0 + 3)
        );
        // Nothing changed: kept.
        assert!(!s.step(t0 + 1).unwrap());
        // A rung fired: re-signed at once, above the last nonce used (same millisecond).
        shelf.fired.fetch_add(1, Ordering::Release);
        assert!(s.resign(t0 + 1).unwrap());
        let second = shelf.ladders.load_full_for_test();
        assert_eq!(second.first_nonce, t0 + 4);
        assert!(!s.resign(t0 + 2).unwrap());
        // Old: re-signed at the current time.
        assert!(s.resign(t0 + 4 + 10_000).unwrap());
        assert_eq!(shelf.ladders.load_full_for_test().first_nonce, t0 + 10_004);
        // The mid moved past the band.
        *mid.lock().unwrap() = Ok(50_300.0);
        assert!(s.step(t0 + 10_005).unwrap());
        let l = shelf.ladders.load_full_for_test();
        assert_eq!(l.mid, 50_300.0);
        assert_eq!(l.rungs[0].limit(), 50_803.0);
        // A failed reading keeps the last mid.
        *mid.lock().unwrap() = Err("down".into());
        assert!(!s.step(t0 + 10_006).unwrap());
        assert_eq!(s.counters().ladders.load(Ordering::Relaxed), 4);
    }
}
