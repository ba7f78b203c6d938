//! The instrument list at start-up: `public/get_instruments` over the venue's own WebSocket
//! (Deribit, or keel-sim speaking it), through the same connection code as the feeds, with a
//! deadline. Start-up code: allocates freely.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use keel_feeds::event::{DisconnectReason, EventBody, MarketEvent, Venue};
use keel_feeds::instrument::{Instrument, InstrumentKind};
use keel_feeds::net::{ConnectionConfig, FeedLoop, Outbox, Session};
use keel_feeds::venues::deribit::{get_instruments, parse_instruments};
use keel_feeds::venues::json::Scanner;

/// Requests one currency's instruments (every kind) and keeps the reply.
struct InstrumentsRequest {
    currency: String,
    reply: Arc<Mutex<Option<Vec<u8>>>>,
}

impl Session for InstrumentsRequest {
    fn venue(&self) -> Venue {
        Venue::Deribit
    }
    fn on_open(&mut self, out: &mut Outbox<'_>) {
        let mut req = Vec::new();
        get_instruments(&mut req, 1, &self.currency, None);
        out.send_text(&req);
    }
    fn on_message(
        &mut self,
        payload: &[u8],
        _recv_ts_ns: u64,
        _out: &mut Outbox<'_>,
        _emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<(), DisconnectReason> {
        // Only the reply to our request (id 1): a venue may send other messages first
        // (notifications, or an echo from a test server).
        if reply_id(payload) == Some(1)
            && let Ok(mut slot) = self.reply.lock()
        {
            slot.get_or_insert_with(|| payload.to_vec());
        }
        Ok(())
    }
}

/// The JSON-RPC `id` of a message, if it is an object with a numeric id.
fn reply_id(payload: &[u8]) -> Option<u64> {
    let mut sc = Scanner::new(payload);
    let mut m = sc.object().ok()?;
    while let Some(k) = m.next(&mut sc).ok()? {
        if k == b"id" {
            return sc.u64().ok();
        }
        sc.skip().ok()?;
    }
    None
}

/// Every instrument of `currency` listed at `url` (options, futures, the perpetual), plus the
/// venue's index for it (`btc_usd`), within `timeout`.
pub fn fetch_deribit(
    url: &str,
    ca_file: Option<PathBuf>,
    currency: &str,
    timeout: Duration,
) -> Result<Vec<Instrument>> {
    let mut cfg = ConnectionConfig::new(url).with_context(|| format!("--deribit-url {url}"))?;
    cfg.ca_file = ca_file;
    cfg.connect_timeout = timeout;
    // One start-up reply with the whole chain: ~710 bytes per instrument, so a 100k-option
    // chain (keel-sim's largest) is ~71 MB, over the streaming connections' 16 MiB limit.
    cfg.max_message_size = cfg.max_message_size.max(256 << 20);
    let reply = Arc::new(Mutex::new(None));
    let mut feed = FeedLoop::new().context("starting the start-up feed loop")?;
    feed.add(
        cfg,
        Box::new(InstrumentsRequest {
            currency: currency.to_string(),
            reply: reply.clone(),
        }),
    )
    .with_context(|| format!("--deribit-url {url}"))?;
    let deadline = Instant::now() + timeout;
    let mut failure: Option<DisconnectReason> = None;
    loop {
        if let Some(bytes) = reply.lock().ok().and_then(|mut s| s.take()) {
            feed.shutdown(&mut |_| {});
            let mut list = parse_instruments(&bytes)
                .with_context(|| format!("public/get_instruments from {url}"))?;
            if list.is_empty() {
                bail!("public/get_instruments from {url}: no {currency} instrument listed");
            }
            list.push(index_of(currency));
            return Ok(list);
        }
        if Instant::now() >= deadline {
            feed.shutdown(&mut |_| {});
            let why = failure.map_or_else(
                || "no reply".to_string(),
                |r| format!("the connection failed ({r:?})"),
            );
            let detail = feed
                .last_failure(0)
                .map(|f| format!(": {}", f.error))
                .unwrap_or_default();
            bail!(
                "public/get_instruments from {url}: {why} within {:.1} s{detail}",
                timeout.as_secs_f64()
            );
        }
        feed.run_once(Duration::from_millis(20), &mut |ev: MarketEvent| {
            if let EventBody::Disconnected { reason } = ev.body {
                failure = Some(reason);
            }
        })
        .context("start-up feed loop")?;
    }
}

/// Deribit's index instrument for a currency (`btc_usd`), which the price-index channel uses.
pub fn index_of(currency: &str) -> Instrument {
    Instrument {
        venue: Venue::Deribit,
        name: format!("{}_usd", currency.to_ascii_lowercase()),
        kind: InstrumentKind::Index,
        base_currency: currency.to_ascii_uppercase(),
        quote_currency: "USD".into(),
        settlement_currency: "USD".into(),
        strike: f64::NAN,
        expiry_ms: 0,
        right: None,
        contract_size: 1.0,
        inverse: false,
        tick_size: 0.01,
        min_size: 0.0,
    }
}
