//! The venue protocol on top of a connection ([`Session`]) and the way it talks back
//! ([`Outbox`]).
//!
//! A session owns its venue's subscriptions, heartbeats and parsing; the connection owns the
//! socket, framing, reconnection and connection events. A session must never block, never
//! allocate per message, and must make `on_open` idempotent: it runs again after every
//! reconnection.

use crate::event::{DisconnectReason, MarketEvent, Venue};
use crate::net::ws::{FrameEncoder, WsError};

/// A venue's protocol over one WebSocket connection.
pub trait Session: Send {
    /// Venue of the events this session emits.
    fn venue(&self) -> Venue;

    /// After every (re)connection's handshake: queue subscription/auth/heartbeat-setup messages.
    fn on_open(&mut self, out: &mut Outbox<'_>);

    /// One complete data message (text or binary), borrowed. Parse it, emit events, queue
    /// replies (e.g. Deribit heartbeat test_request -> public/test; a resnapshot request).
    /// Returning Err(reason) drops the connection (e.g. subscription rejected).
    ///
    /// `recv_ts_ns` is [`crate::clock::now_ns`] taken right after the socket read that
    /// completed the message. The connection sets [`MarketEvent::conn`] on every emitted event.
    fn on_message(
        &mut self,
        payload: &[u8],
        recv_ts_ns: u64,
        out: &mut Outbox<'_>,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<(), DisconnectReason>;

    /// Called about every 100 ms while open: client-side pings (OKX/Bybit send text "ping"
    /// or {"op":"ping"}), per-subscription staleness (`Stale`/`Fresh` events), work finished
    /// off the feed thread (a REST book snapshot to apply). Events go to `emit` like
    /// `on_message`'s (the connection sets [`MarketEvent::conn`]). Err drops the connection.
    fn on_timer(
        &mut self,
        now_ns: u64,
        out: &mut Outbox<'_>,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<(), DisconnectReason> {
        let _ = (now_ns, out, emit);
        Ok(())
    }

    /// Called on every loop turn while open, before waiting for readiness: a session that
    /// sends on its own initiative (an order session draining its intents) queues messages
    /// here and returns true; the connection then writes them at once and calls
    /// [`Session::on_flushed`]. Must be cheap when there is nothing to send.
    fn poll_outgoing(&mut self, out: &mut Outbox<'_>) -> bool {
        let _ = out;
        false
    }

    /// After the write that followed a [`Session::poll_outgoing`] returning true (bytes handed
    /// to the socket, or to TLS and the socket): `now_ns` is [`crate::clock::now_ns`] then.
    fn on_flushed(&mut self, now_ns: u64) {
        let _ = now_ns;
    }

    /// The book of `instrument` ([`InstrumentId::NONE`]: every book) lost an update downstream
    /// (the engine dropped one under overload): start it again from a new snapshot, from the
    /// next [`Session::poll_outgoing`]. Sessions without books ignore it. Never allocates.
    ///
    /// [`InstrumentId::NONE`]: crate::instrument::InstrumentId::NONE
    fn request_resync(&mut self, instrument: crate::instrument::InstrumentId) {
        let _ = instrument;
    }
}

/// Queues client frames (masked, framed) into a connection's preallocated write buffer; the
/// connection flushes it after the callback returns. Never allocates while the buffer has room.
pub struct Outbox<'a> {
    encoder: &'a mut FrameEncoder,
    out: &'a mut Vec<u8>,
}

impl<'a> Outbox<'a> {
    /// An outbox writing frames into `out` (the connection makes one per callback; venue tests
    /// make their own and read the frames back with [`crate::net::ws::parse_client_frames`]).
    pub fn new(encoder: &'a mut FrameEncoder, out: &'a mut Vec<u8>) -> Self {
        Self { encoder, out }
    }

    /// Queues a text message (the caller guarantees UTF-8).
    pub fn send_text(&mut self, payload: &[u8]) {
        self.encoder.text(payload, self.out);
    }

    /// Queues a binary message.
    pub fn send_binary(&mut self, payload: &[u8]) {
        self.encoder.binary(payload, self.out);
    }

    /// Queues a WebSocket ping (payload at most 125 bytes).
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), WsError> {
        self.encoder.ping(payload, self.out)
    }

    /// Bytes queued and not yet written to the socket.
    pub fn queued_bytes(&self) -> usize {
        self.out.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ws::{OpCode, parse_client_frames};

    #[test]
    fn outbox_frames_what_sessions_send() {
        let mut enc = FrameEncoder::new();
        let mut buf = Vec::new();
        let mut out = Outbox::new(&mut enc, &mut buf);
        out.send_text(b"ping");
        out.send_binary(&[1, 2]);
        out.send_ping(b"hb").unwrap();
        assert!(out.send_ping(&[0; 200]).is_err());
        assert!(out.queued_bytes() > 0);
        let frames = parse_client_frames(&buf).unwrap();
        assert_eq!(
            frames,
            vec![
                (OpCode::Text, true, b"ping".to_vec()),
                (OpCode::Binary, true, vec![1, 2]),
                (OpCode::Ping, true, b"hb".to_vec()),
            ]
        );
    }
}
