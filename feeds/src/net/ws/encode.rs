//! The client-frame encoder: every frame masked with a fresh 4-byte key from a fast generator
//! seeded once from OS entropy, appended to the caller's reused output buffer.
//!
//! Never allocates when the output buffer has room; never sends an unmasked frame or a control
//! frame over 125 bytes.

use super::{MAX_CONTROL_PAYLOAD, OpCode, WsError};
use crate::net::rand::WyRand;

/// XORs `buf` with the 4-byte `mask`, starting at mask phase 0 (RFC 6455 §5.3); 8 bytes a step.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        if let Ok(bytes) = <[u8; 8]>::try_from(&*chunk) {
            chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes());
        }
    }
    for (b, m) in chunks.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *b ^= m;
    }
}

/// Encodes client frames.
#[derive(Clone, Debug)]
pub struct FrameEncoder {
    rng: WyRand,
}

impl Default for FrameEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameEncoder {
    /// An encoder whose mask generator is seeded from OS entropy.
    pub fn new() -> Self {
        Self {
            rng: WyRand::from_os(),
        }
    }

    /// An encoder with a fixed mask seed (deterministic tests).
    pub fn with_seed(seed: u64) -> Self {
        Self {
            rng: WyRand::from_seed(seed),
        }
    }

    /// Appends one masked frame to `out`. `fin = false` starts or continues a fragmented
    /// message (then follow with [`OpCode::Continuation`] frames). The caller keeps control
    /// payloads within 125 bytes (the typed methods below check it).
    pub fn frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8], out: &mut Vec<u8>) {
        let mask = (self.rng.next_u64() as u32).to_ne_bytes();
        let b0 = (u8::from(fin) << 7) | opcode as u8;
        let len = payload.len();
        out.push(b0);
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if let Ok(len16) = u16::try_from(len) {
            out.push(0x80 | 126);
            out.extend_from_slice(&len16.to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        let start = out.len();
        out.extend_from_slice(payload);
        if let Some(body) = out.get_mut(start..) {
            apply_mask(body, mask);
        }
    }

    /// A text message in one frame (the caller guarantees UTF-8).
    pub fn text(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        self.frame(OpCode::Text, true, payload, out);
    }

    /// A binary message in one frame.
    pub fn binary(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        self.frame(OpCode::Binary, true, payload, out);
    }

    /// A ping (payload ≤ 125 bytes).
    pub fn ping(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), WsError> {
        self.control(OpCode::Ping, payload, out)
    }

    /// A pong (payload ≤ 125 bytes; echo the ping's).
    pub fn pong(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), WsError> {
        self.control(OpCode::Pong, payload, out)
    }

    /// A close frame: no payload with `None`, else the code and a reason, truncated at a char
    /// boundary to fit 123 bytes.
    pub fn close(&mut self, status: Option<(u16, &str)>, out: &mut Vec<u8>) {
        let mut body = [0u8; MAX_CONTROL_PAYLOAD];
        let n = match status {
            None => 0,
            Some((code, reason)) => {
                let mut cut = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
                while !reason.is_char_boundary(cut) {
                    cut -= 1;
                }
                body[..2].copy_from_slice(&code.to_be_bytes());
                body[2..2 + cut].copy_from_slice(&reason.as_bytes()[..cut]);
                2 + cut
            }
        };
        self.frame(OpCode::Close, true, &body[..n], out);
    }

    fn control(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), WsError> {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(WsError::ControlFrameTooLong {
                opcode,
                len: payload.len() as u64,
            });
        }
        self.frame(opcode, true, payload, out);
        Ok(())
    }
}

/// Decodes client (masked) frames: for tests and diagnostics (e.g. a venue session's tests
/// checking what its `on_open` queued). Allocates; not for the hot path. Returns each frame's
/// opcode, FIN bit and unmasked payload; errors on an unmasked or truncated frame.
pub fn parse_client_frames(mut bytes: &[u8]) -> Result<Vec<(OpCode, bool, Vec<u8>)>, String> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let [b0, b1, rest @ ..] = bytes else {
            return Err(format!("truncated frame header {bytes:02x?}"));
        };
        let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(format!("reserved opcode {b0:#x}"))?;
        if b1 & 0x80 == 0 {
            return Err("client frame is not masked".into());
        }
        let (len, rest) = match b1 & 0x7F {
            126 => match rest {
                [a, b, r @ ..] => (u64::from(u16::from_be_bytes([*a, *b])), r),
                _ => return Err("truncated 16-bit length".into()),
            },
            127 => match rest.split_first_chunk::<8>() {
                Some((l, r)) => (u64::from_be_bytes(*l), r),
                None => return Err("truncated 64-bit length".into()),
            },
            n => (u64::from(n), rest),
        };
        let Some((mask, rest)) = rest.split_first_chunk::<4>() else {
            return Err("truncated mask".into());
        };
        let len = usize::try_from(len).map_err(|_| "length overflow".to_string())?;
        let (payload, rest) = rest
            .split_at_checked(len)
            .ok_or(format!("truncated payload: {len} bytes announced"))?;
        let mut payload = payload.to_vec();
        apply_mask(&mut payload, *mask);
        frames.push((opcode, b0 & 0x80 != 0, payload));
        bytes = rest;
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::protocol::{Role, WebSocket};

    /// Feeds our frames to tungstenite's server side (which rejects unmasked client frames).
    fn tungstenite_reads(bytes: Vec<u8>) -> Vec<tungstenite::Message> {
        let stream = crate::net::ws::handshake::tests::MockStream::new(bytes);
        let mut ws = WebSocket::from_raw_socket(stream, Role::Server, None);
        let mut got = Vec::new();
        loop {
            match ws.read() {
                Ok(m) => got.push(m),
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    break;
                }
                Err(tungstenite::Error::ConnectionClosed) => break,
                Err(e) => panic!("tungstenite rejected our frames: {e}"),
            }
        }
        got
    }

    #[test]
    fn tungstenite_accepts_our_frames() {
        let mut enc = FrameEncoder::new();
        let mut out = Vec::with_capacity(1 << 20);
        let mid = "m".repeat(300);
        let big = "b".repeat(70_000);
        enc.text(b"{\"method\":\"public/subscribe\"}", &mut out);
        enc.text(mid.as_bytes(), &mut out);
        enc.binary(big.as_bytes(), &mut out);
        enc.ping(b"are you there", &mut out).unwrap();
        enc.pong(b"", &mut out).unwrap();
        enc.frame(OpCode::Text, false, b"frag", &mut out);
        enc.frame(OpCode::Continuation, false, b"men", &mut out);
        enc.frame(OpCode::Continuation, true, b"ted", &mut out);
        enc.text(b"", &mut out);
        enc.close(Some((1000, "bye")), &mut out);
        use tungstenite::Message as M;
        let got = tungstenite_reads(out);
        assert_eq!(
            got,
            vec![
                M::text("{\"method\":\"public/subscribe\"}"),
                M::text(mid),
                M::binary(big.into_bytes()),
                M::Ping(b"are you there".to_vec().into()),
                M::Pong(Vec::new().into()),
                M::text("fragmented"),
                M::text(""),
                M::Close(Some(tungstenite::protocol::CloseFrame {
                    code: 1000.into(),
                    reason: "bye".into()
                })),
            ]
        );
    }

    #[test]
    fn masks_are_fresh_and_frames_round_trip() {
        let mut enc = FrameEncoder::with_seed(42);
        let mut out = Vec::new();
        enc.text(b"same", &mut out);
        enc.text(b"same", &mut out);
        let (a, b) = out.split_at(out.len() / 2);
        assert_ne!(a[2..6], b[2..6], "each frame gets a new mask");
        assert_ne!(&a[6..], b"same", "payload is masked");
        let frames = parse_client_frames(&out).unwrap();
        assert_eq!(frames.len(), 2);
        assert!(
            frames
                .iter()
                .all(|(op, fin, p)| *op == OpCode::Text && *fin && p == b"same")
        );
        // Mask phase carries across the 8-byte fast path and the tail.
        for len in 0..40 {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut buf = data.clone();
            apply_mask(&mut buf, [1, 2, 3, 4]);
            for (i, (m, d)) in buf.iter().zip(&data).enumerate() {
                assert_eq!(*m, d ^ [1, 2, 3, 4][i % 4]);
            }
        }
    }

    #[test]
    fn control_limits_and_close_truncation() {
        let mut enc = FrameEncoder::new();
        let mut out = Vec::new();
        assert_eq!(
            enc.ping(&[0; 126], &mut out),
            Err(WsError::ControlFrameTooLong {
                opcode: OpCode::Ping,
                len: 126
            })
        );
        assert!(out.is_empty(), "nothing written on error");
        enc.ping(&[0; 125], &mut out).unwrap();
        out.clear();
        let reason = "é".repeat(100); // 200 bytes, 2-byte chars
        enc.close(Some((1000, &reason)), &mut out);
        let frames = parse_client_frames(&out).unwrap();
        let body = &frames[0].2;
        assert_eq!(
            body.len(),
            2 + 122,
            "cut at a char boundary within 123 bytes"
        );
        assert!(std::str::from_utf8(&body[2..]).is_ok());
        out.clear();
        enc.close(None, &mut out);
        assert_eq!(parse_client_frames(&out).unwrap()[0].2, Vec::<u8>::new());
    }

    #[test]
    fn no_allocation_when_the_buffer_has_room() {
        let mut enc = FrameEncoder::new();
        let mut out = Vec::with_capacity(4096);
        let ptr = out.as_ptr();
        for _ in 0..10 {
            out.clear();
            enc.text(&[b'a'; 1000], &mut out);
            enc.pong(b"x", &mut out).unwrap();
        }
        assert_eq!(out.as_ptr(), ptr);
        assert_eq!(out.capacity(), 4096);
    }
}
