//! The feed loop: one mio [`Poll`] owned by a feed thread, serving several connections (one
//! [`mio::Token`] each, the token being the connection's index). Several loops may run on
//! several threads; a loop is `Send` and is moved into its thread.
//!
//! Owns its connections and their timers. Never blocks longer than the caller's timeout or the
//! next timer, never allocates per message, and never stops on a connection's failure: the
//! connection reports `Disconnected` and reconnects by itself.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::{Events, Poll};

use crate::event::MarketEvent;
use crate::net::conn::{
    ConnFailure, ConnState, ConnStats, Connection, ConnectionConfig, SetupError,
};
use crate::net::session::Session;

/// Most connections one loop serves ([`MarketEvent::conn`] is a `u8`).
pub const MAX_CONNECTIONS: usize = 256;

/// A mio event loop serving WebSocket connections.
pub struct FeedLoop {
    poll: Poll,
    events: Events,
    conns: Vec<Connection>,
}

impl FeedLoop {
    /// A loop with no connection.
    pub fn new() -> Result<Self, SetupError> {
        Ok(Self {
            poll: Poll::new().map_err(SetupError::Poll)?,
            events: Events::with_capacity(MAX_CONNECTIONS),
            conns: Vec::new(),
        })
    }

    /// Adds a connection (it connects on the next [`run_once`](Self::run_once)) and returns its
    /// index, which its events carry in [`MarketEvent::conn`]. Builds the TLS configuration now,
    /// so a bad CA file fails here, naming the file.
    pub fn add(
        &mut self,
        config: ConnectionConfig,
        session: Box<dyn Session>,
    ) -> Result<usize, SetupError> {
        let index = self.conns.len();
        let Ok(index_u8) = u8::try_from(index) else {
            return Err(SetupError::TooManyConnections {
                limit: MAX_CONNECTIONS,
            });
        };
        self.conns
            .push(Connection::new(index_u8, config, session, Instant::now())?);
        Ok(index)
    }

    /// Number of connections.
    /// Asks connection `conn`'s session to start the book of `instrument` again from a new
    /// snapshot ([`Session::request_resync`]); no-op for an unknown connection.
    pub fn request_resync(&mut self, conn: usize, instrument: crate::instrument::InstrumentId) {
        if let Some(c) = self.conns.get_mut(conn) {
            c.request_resync(instrument);
        }
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// True with no connection.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Where connection `conn` is.
    pub fn state(&self, conn: usize) -> Option<ConnState> {
        self.conns.get(conn).map(Connection::state)
    }

    /// Counters of connection `conn`.
    pub fn stats(&self, conn: usize) -> Option<ConnStats> {
        self.conns.get(conn).map(Connection::stats)
    }

    /// The last failure of connection `conn` (URL, time, reason and the full error).
    pub fn last_failure(&self, conn: usize) -> Option<&ConnFailure> {
        self.conns.get(conn).and_then(Connection::last_failure)
    }

    /// Runs timers, waits for readiness up to `timeout` (less if a timer is due sooner), serves
    /// it, and runs timers again. Events go to `emit`. Errors only if the poller itself fails.
    pub fn run_once<F: FnMut(MarketEvent)>(
        &mut self,
        timeout: Duration,
        emit: &mut F,
    ) -> io::Result<()> {
        let emit: &mut dyn FnMut(MarketEvent) = emit;
        let now = Instant::now();
        self.poll_outgoing_dyn(emit);
        self.run_timers(now, emit);
        let wait = if self.conns.iter().any(Connection::has_more_to_read) {
            Duration::ZERO
        } else {
            self.conns
                .iter()
                .filter_map(Connection::next_wakeup)
                .min()
                .map_or(timeout, |t| t.saturating_duration_since(now).min(timeout))
        };
        match self.poll.poll(&mut self.events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let registry = self.poll.registry();
        for event in &self.events {
            if let Some(conn) = self.conns.get_mut(event.token().0) {
                conn.on_ready(registry, emit);
            }
        }
        // Connections that stopped at their read budget resume (edge-triggered: no new event
        // would come for bytes already waiting).
        for conn in &mut self.conns {
            if conn.has_more_to_read() {
                conn.on_ready(registry, emit);
            }
        }
        self.run_timers(Instant::now(), emit);
        Ok(())
    }

    /// Lets every open connection's session send what it has queued on its own initiative
    /// (see [`Session::poll_outgoing`]) without waiting for readiness; `run_once` does this
    /// first on every turn.
    pub fn poll_outgoing<F: FnMut(MarketEvent)>(&mut self, emit: &mut F) {
        self.poll_outgoing_dyn(emit);
    }

    fn poll_outgoing_dyn(&mut self, emit: &mut dyn FnMut(MarketEvent)) {
        let registry = self.poll.registry();
        for conn in &mut self.conns {
            conn.poll_outgoing(registry, emit);
        }
    }

    fn run_timers(&mut self, now: Instant, emit: &mut dyn FnMut(MarketEvent)) {
        let registry = self.poll.registry();
        for conn in &mut self.conns {
            if conn.next_wakeup().is_some_and(|t| t <= now) {
                conn.on_time(registry, now, emit);
            }
        }
    }

    /// Runs until `stop` is set (checked at least every 100 ms), then shuts every connection
    /// down.
    pub fn run_until<F: FnMut(MarketEvent)>(
        &mut self,
        stop: &AtomicBool,
        emit: &mut F,
    ) -> io::Result<()> {
        while !stop.load(Ordering::Acquire) {
            self.run_once(Duration::from_millis(100), emit)?;
        }
        self.shutdown(emit);
        Ok(())
    }

    /// Closes every connection (a close frame where open, best effort) and emits
    /// `Disconnected { Shutdown }` for each one that was up. Connections never reconnect after.
    pub fn shutdown<F: FnMut(MarketEvent)>(&mut self, emit: &mut F) {
        let emit: &mut dyn FnMut(MarketEvent) = emit;
        let registry = self.poll.registry();
        for conn in &mut self.conns {
            conn.shutdown(registry, emit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_moves_to_its_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<FeedLoop>();
    }
}
