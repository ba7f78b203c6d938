//! Keel's own RFC 6455 WebSocket client codec: the opening handshake ([`ClientHandshake`]), a
//! zero-copy frame decoder for server frames ([`FrameDecoder`]) and a masking encoder for client
//! frames ([`FrameEncoder`]).
//!
//! Owns framing only: no sockets, no timers, no policy (the connection in
//! [`crate::net::conn`] decides what to do with a ping or a close). The decoder and encoder
//! never allocate per message once their buffers have grown to the largest message seen, never
//! panic on bytes from the network, and never accept what RFC 6455 says a client must fail:
//! masked server frames, RSV bits without an extension, reserved opcodes, fragmented or long
//! control frames, stray continuations, messages above the configured maximum, bad close
//! payloads. Text messages are checked for UTF-8 with `std::str::from_utf8` (on by default,
//! switchable, see [`FrameDecoder::set_validate_utf8`]).

mod decode;
mod encode;
mod handshake;

pub use decode::FrameDecoder;
pub use encode::{FrameEncoder, apply_mask, parse_client_frames};
pub use handshake::{ClientHandshake, HandshakeError, MAX_RESPONSE_HEAD, WS_GUID, accept_key};

use std::fmt;

/// A frame opcode (RFC 6455 §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum OpCode {
    /// Continuation of a fragmented message.
    Continuation = 0x0,
    /// Text data.
    Text = 0x1,
    /// Binary data.
    Binary = 0x2,
    /// Connection close.
    Close = 0x8,
    /// Ping.
    Ping = 0x9,
    /// Pong.
    Pong = 0xA,
}

impl OpCode {
    /// The opcode of a 4-bit value, `None` for the reserved ones.
    pub fn from_u8(v: u8) -> Option<OpCode> {
        Some(match v {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// Close, ping and pong.
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

impl fmt::Display for OpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpCode::Continuation => "continuation",
            OpCode::Text => "text",
            OpCode::Binary => "binary",
            OpCode::Close => "close",
            OpCode::Ping => "ping",
            OpCode::Pong => "pong",
        })
    }
}

/// Longest payload a control frame may carry.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A WebSocket protocol violation by the server (or a bad request to the encoder).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    /// Server-to-client frames must not be masked (RFC 6455 §5.1).
    #[error("server sent a masked frame")]
    MaskedServerFrame,
    /// RSV1-3 set though no extension was negotiated.
    #[error("frame has reserved bits {0:#05b} set without a negotiated extension")]
    ReservedBits(u8),
    /// Opcode 0x3-0x7 or 0xB-0xF.
    #[error("frame has reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A control frame longer than 125 bytes.
    #[error("{opcode} frame of {len} bytes exceeds the 125-byte control frame limit")]
    ControlFrameTooLong {
        /// Close, ping or pong.
        opcode: OpCode,
        /// Its payload length.
        len: u64,
    },
    /// A control frame without FIN.
    #[error("fragmented {opcode} frame (control frames must not be fragmented)")]
    FragmentedControlFrame {
        /// Close, ping or pong.
        opcode: OpCode,
    },
    /// A continuation frame with no fragmented message in progress.
    #[error("continuation frame without a fragmented message in progress")]
    UnexpectedContinuation,
    /// A new text/binary frame while a fragmented message is still open.
    #[error("new {opcode} frame while a fragmented message is in progress")]
    ExpectedContinuation {
        /// Text or binary.
        opcode: OpCode,
    },
    /// The message would exceed the configured maximum.
    #[error("message of at least {size} bytes exceeds the maximum of {limit} bytes")]
    MessageTooLarge {
        /// Its size so far (or the announced frame length).
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// A 64-bit length with its most significant bit set (RFC 6455 §5.2).
    #[error("64-bit payload length {0:#x} has its most significant bit set")]
    LengthOverflow(u64),
    /// A text message that is not UTF-8.
    #[error("text message is not valid UTF-8 (at byte {valid_up_to})")]
    InvalidUtf8 {
        /// Length of its valid prefix.
        valid_up_to: usize,
    },
    /// A close frame with a 1-byte payload.
    #[error("close frame with a 1-byte payload (a status code needs 2)")]
    CloseTooShort,
    /// A close code that may not be sent (RFC 6455 §7.4).
    #[error("close frame with invalid status code {0}")]
    InvalidCloseCode(u16),
    /// A close reason that is not UTF-8.
    #[error("close frame reason is not valid UTF-8")]
    InvalidCloseReason,
}

/// True for close codes an endpoint may send (RFC 6455 §7.4.1, IANA registry, private range).
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A close frame's status and reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// Status code.
    pub code: u16,
    /// Reason (UTF-8, at most 123 bytes).
    pub reason: &'a str,
}

/// One complete message or control frame from the server, borrowing the decoder's buffers:
/// valid until the next call on the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message (UTF-8 checked unless disabled, hence bytes).
    Text(&'a [u8]),
    /// A binary message.
    Binary(&'a [u8]),
    /// A ping (answer with a pong carrying the same payload).
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
    /// A close, with its status if the payload had one.
    Close(Option<CloseFrame<'a>>),
}
