//! The QUIC plumbing that the client and the coordinator share, and nothing
//! of either side's protocol logic: TLS 1.3 with a certificate pinned by its
//! SHA-256 fingerprint ([`server_config`], [`client_config`],
//! [`fingerprint`]), control streams read and written one length-prefixed
//! frame at a time under an explicit limit ([`FrameReader`],
//! [`FrameWriter`]), and the application codes either side closes a
//! connection with ([`close`]), and the flow-control windows of a
//! connection before and after admission ([`admit`]).

mod framed;
mod tls;

pub use framed::{FrameReader, FrameWriter, NetError, close};
pub use tls::{
    ADMITTED_BIDI_STREAMS, ADMITTED_RECEIVE_WINDOW, TlsError, UNADMITTED_RECEIVE_WINDOW, admit,
    client_config, fingerprint, server_config,
};
