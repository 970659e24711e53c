//! Length-prefixed frames on a QUIC stream, with an explicit maximum size.
//!
//! A frame is a 4-byte big-endian payload length followed by the payload.
//! The limit is checked as soon as the 4 length bytes arrive, so a peer that
//! announces an oversized frame is refused before a single payload byte is
//! buffered: memory per connection is bounded by the limit, whatever the peer
//! sends. [`FrameDecoder`] is sans-IO: the caller feeds it whatever bytes the
//! stream produced and takes complete frames out, in time linear in the
//! bytes however small the frames (taken frames are skipped by an offset and
//! compacted away once per push, not shifted out one by one).
//!
//! The protocol version is negotiated by TLS ALPN ([`ALPN`]); a peer that
//! does not offer it never gets to send a frame.

/// The ALPN protocol id of this version of the wire protocol.
pub const ALPN: &[u8] = b"fedstake/1";

/// Bytes of the length prefix.
pub const HEADER_BYTES: usize = 4;

/// Why a frame was refused. The connection it came from should be closed:
/// the stream can no longer be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The peer announced (or we tried to send) a payload above the limit.
    #[error("frame of {length} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The announced payload length.
        length: u64,
        /// The limit in force.
        limit: u32,
    },
    /// The stream ended inside a frame.
    #[error("stream ended {missing} bytes before the end of a frame")]
    Truncated {
        /// Bytes still expected.
        missing: usize,
    },
}

/// Prefixes `payload` with its length, refusing payloads above `limit`.
pub fn encode_frame(payload: &[u8], limit: u32) -> Result<Vec<u8>, FrameError> {
    let length = payload.len();
    let Some(header) = u32::try_from(length).ok().filter(|l| *l <= limit) else {
        return Err(FrameError::TooLarge {
            length: length as u64,
            limit,
        });
    };
    let mut frame = Vec::with_capacity(HEADER_BYTES + length);
    frame.extend_from_slice(&header.to_be_bytes());
    frame.extend_from_slice(payload);
    Ok(frame)
}

/// Reassembles frames from arbitrary chunks of a byte stream.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    limit: u32,
    /// Bytes pushed; those before `start` belong to frames already taken.
    buffer: Vec<u8>,
    start: usize,
    /// Set once a frame was refused: everything after it is unparseable.
    failed: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder that refuses payloads above `limit` bytes.
    pub fn new(limit: u32) -> FrameDecoder {
        FrameDecoder {
            limit,
            buffer: Vec::new(),
            start: 0,
            failed: None,
        }
    }

    /// Changes the limit for frames not yet started, for instance once the
    /// peer is authenticated and may send a task's larger messages.
    pub fn set_limit(&mut self, limit: u32) {
        self.limit = limit;
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            // Drop the frames taken since the last push: each byte is moved
            // at most once, as the unfinished frame left at a push.
            self.buffer.drain(..self.start);
            self.start = 0;
            self.buffer.extend_from_slice(bytes);
        }
    }

    /// The bytes pushed and not yet taken as frames.
    fn pending(&self) -> &[u8] {
        &self.buffer[self.start..]
    }

    /// The next complete frame's payload, `None` if more bytes are needed.
    /// After an error every call returns that error again.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let Some(header) = self.pending().first_chunk::<HEADER_BYTES>() else {
            return Ok(None);
        };
        let length = u32::from_be_bytes(*header);
        if length > self.limit {
            let error = FrameError::TooLarge {
                length: u64::from(length),
                limit: self.limit,
            };
            self.buffer = Vec::new();
            self.start = 0;
            self.failed = Some(error.clone());
            return Err(error);
        }
        let end = HEADER_BYTES + length as usize;
        let pending = self.pending().len();
        if pending < end {
            // Reserve once for the whole frame (bounded by the limit).
            self.buffer.reserve(end - pending);
            return Ok(None);
        }
        let payload = self.pending()[HEADER_BYTES..end].to_vec();
        self.start += end;
        Ok(Some(payload))
    }

    /// Call when the stream ended: an error if it ended inside a frame.
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let pending = self.pending();
        match pending.first_chunk::<HEADER_BYTES>() {
            None if pending.is_empty() => Ok(()),
            None => Err(FrameError::Truncated {
                missing: HEADER_BYTES - pending.len(),
            }),
            Some(header) => {
                let end = HEADER_BYTES + u32::from_be_bytes(*header) as usize;
                Err(FrameError::Truncated {
                    missing: end - pending.len(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_oversized_header_is_refused_before_its_payload_arrives() {
        let mut decoder = FrameDecoder::new(1024);
        decoder.push(&(1025u32).to_be_bytes());
        let error = decoder.next_frame().unwrap_err();
        assert_eq!(
            error,
            FrameError::TooLarge {
                length: 1025,
                limit: 1024
            }
        );
        decoder.push(&[0; 2048]);
        assert_eq!(
            decoder.next_frame().unwrap_err(),
            error,
            "the stream stays refused"
        );
        assert!(decoder.buffer.is_empty(), "nothing was buffered");
    }

    #[test]
    fn encoding_refuses_what_decoding_would() {
        assert!(encode_frame(&[0; 10], 10).is_ok());
        assert_eq!(
            encode_frame(&[0; 11], 10).unwrap_err(),
            FrameError::TooLarge {
                length: 11,
                limit: 10
            }
        );
    }

    #[test]
    fn a_stream_ending_inside_a_frame_is_truncated() {
        let mut decoder = FrameDecoder::new(100);
        decoder.push(&encode_frame(b"hello", 100).unwrap()[..7]);
        assert_eq!(decoder.next_frame().unwrap(), None);
        assert_eq!(
            decoder.finish().unwrap_err(),
            FrameError::Truncated { missing: 2 }
        );
        let mut decoder = FrameDecoder::new(100);
        decoder.push(&[0, 0]);
        assert_eq!(
            decoder.finish().unwrap_err(),
            FrameError::Truncated { missing: 2 }
        );
    }

    proptest! {
        #[test]
        fn frames_survive_any_chunking(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            cuts in proptest::collection::vec(1usize..64, 1..40),
        ) {
            let stream: Vec<u8> =
                payloads.iter().flat_map(|p| encode_frame(p, 300).unwrap()).collect();
            let mut decoder = FrameDecoder::new(300);
            let mut decoded = Vec::new();
            let mut rest = stream.as_slice();
            for cut in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at((*cut).min(rest.len()));
                decoder.push(chunk);
                rest = tail;
                while let Some(frame) = decoder.next_frame().unwrap() {
                    decoded.push(frame);
                }
            }
            decoder.finish().unwrap();
            prop_assert_eq!(decoded, payloads);
        }
    }
}
