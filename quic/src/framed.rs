//! Frames over QUIC streams: the control stream of a connection, read and
//! written one message at a time with an explicit size limit, and the
//! model-download streams.

use fedstake_protocol::framing::{FrameDecoder, FrameError, encode_frame};
use fedstake_protocol::wire::WireError;

/// Largest chunk read from a stream at once.
const READ_CHUNK: usize = 64 * 1024;

/// QUIC application error codes with which either side closes a connection.
pub mod close {
    /// The task is over, or the client stops.
    pub const DONE: u32 = 0;
    /// The peer broke the protocol (oversized or malformed frame, unexpected
    /// message).
    pub const PROTOCOL: u32 = 1;
    /// The client was refused at join.
    pub const REFUSED: u32 = 2;
    /// Another connection took over this client's address.
    pub const REPLACED: u32 = 3;
}

/// Why a stream could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A frame broke the size limit or the stream ended inside one.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A frame is not a message.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Reading failed (the peer reset or the connection closed).
    #[error("stream read: {0}")]
    Read(#[from] quinn::ReadError),
    /// Writing failed.
    #[error("stream write: {0}")]
    Write(#[from] quinn::WriteError),
    /// The connection failed or closed.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Reading a whole stream failed.
    #[error("stream read: {0}")]
    ReadToEnd(#[from] quinn::ReadToEndError),
    /// The stream was already finished.
    #[error("stream already closed: {0}")]
    Closed(#[from] quinn::ClosedStream),
    /// The peer ended the control stream.
    #[error("the peer closed the control stream")]
    Ended,
}

/// The reading half of a control stream.
#[derive(Debug)]
pub struct FrameReader {
    stream: quinn::RecvStream,
    decoder: FrameDecoder,
}

impl FrameReader {
    /// Reads frames of at most `limit` bytes from `stream`.
    pub fn new(stream: quinn::RecvStream, limit: u32) -> Self {
        Self {
            stream,
            decoder: FrameDecoder::new(limit),
        }
    }

    /// Changes the limit (after admission, to the task's).
    pub fn set_limit(&mut self, limit: u32) {
        self.decoder.set_limit(limit);
    }

    /// The next frame; [`NetError::Ended`] when the stream ends cleanly.
    pub async fn next(&mut self) -> Result<Vec<u8>, NetError> {
        loop {
            if let Some(frame) = self.decoder.next_frame()? {
                return Ok(frame);
            }
            match self.stream.read_chunk(READ_CHUNK, true).await? {
                Some(chunk) => self.decoder.push(&chunk.bytes),
                None => {
                    self.decoder.finish()?;
                    return Err(NetError::Ended);
                }
            }
        }
    }
}

/// The writing half of a control stream.
#[derive(Debug)]
pub struct FrameWriter {
    stream: quinn::SendStream,
    limit: u32,
}

impl FrameWriter {
    /// Writes frames of at most `limit` bytes to `stream`.
    pub fn new(stream: quinn::SendStream, limit: u32) -> Self {
        Self { stream, limit }
    }

    /// Changes the limit.
    pub fn set_limit(&mut self, limit: u32) {
        self.limit = limit;
    }

    /// Writes one frame.
    pub async fn send(&mut self, payload: &[u8]) -> Result<(), NetError> {
        let frame = encode_frame(payload, self.limit)?;
        self.stream.write_all(&frame).await?;
        Ok(())
    }

    /// Finishes the stream (the peer reads its end).
    pub fn finish(&mut self) -> Result<(), NetError> {
        Ok(self.stream.finish()?)
    }
}
