//! TLS 1.3 for QUIC: the coordinator's self-signed certificate, and clients
//! that trust exactly one certificate, pinned by its SHA-256 fingerprint.
//!
//! The coordinator's transport bounds what an unauthenticated peer can make
//! it buffer ([`UNADMITTED_RECEIVE_WINDOW`]) until [`admit`] opens the
//! windows of an admitted client.
//!
//! There is no certificate authority: the sponsor publishes the fingerprint
//! (in the task spec's `[coordinator]` section, or out of band) and a client
//! refuses any other certificate. The handshake signature is still verified,
//! so a peer must hold the pinned certificate's private key, not just a copy
//! of the certificate.

use std::sync::Arc;
use std::time::Duration;

use fedstake_protocol::framing::ALPN;
use fedstake_protocol::wire::JOIN_FRAME_LIMIT;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// How long a silent connection lives; clients send keep-alives well within it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Keep-alive interval of both sides.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Bytes a peer may have in flight to the coordinator, across all its
/// streams, until [`admit`] raises it: everything an unauthenticated
/// connection can make the coordinator buffer. Four join frames
/// ([`JOIN_FRAME_LIMIT`], 16 KiB), where a join needs two frames of under
/// 200 bytes. quinn's default (unbounded connection window, 100 + 100
/// streams of 1.25 MB each) let one connection buffer about 250 MB.
pub const UNADMITTED_RECEIVE_WINDOW: u32 = 4 * JOIN_FRAME_LIMIT;

/// Streams a peer may have open until [`admit`]: the control stream only.
const UNADMITTED_BIDI_STREAMS: u32 = 1;

/// Receive window of each stream, and of an admitted connection as a whole.
/// Flow control, not a size limit (frames are bounded by the task's frame
/// limit): it bounds what quinn buffers for one admitted client, and 8 MiB
/// lets a masked input of a million coordinates (4 MB) arrive without
/// waiting for a window update.
pub const ADMITTED_RECEIVE_WINDOW: u32 = 8 << 20;

/// Bidirectional streams an admitted client may have open at once: its
/// control stream and model downloads (one per attempt it is drawn for;
/// a spare for a download still closing while the next starts).
pub const ADMITTED_BIDI_STREAMS: u32 = 3;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the certificate, key or protocol settings.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The TLS configuration has no cipher suite QUIC can use.
    #[error("TLS configuration unusable for QUIC: {0}")]
    Quic(String),
}

/// SHA-256 of a certificate's DER encoding: what clients pin.
pub fn fingerprint(certificate: &[u8]) -> [u8; 32] {
    Sha256::digest(certificate).into()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn transport() -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    // Infallible: 60 s is far below QUIC's 2^62 ms limit.
    transport.max_idle_timeout(Some(
        IDLE_TIMEOUT
            .try_into()
            .expect("60 s is a valid idle timeout"),
    ));
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    transport
}

/// The coordinator's transport: the windows of a connection not admitted
/// yet ([`UNADMITTED_RECEIVE_WINDOW`], one stream), no unidirectional
/// streams and no datagrams (the protocol uses neither, and quinn would
/// buffer unread ones).
fn server_transport() -> Arc<quinn::TransportConfig> {
    let mut transport = transport();
    transport
        .receive_window(UNADMITTED_RECEIVE_WINDOW.into())
        .stream_receive_window(ADMITTED_RECEIVE_WINDOW.into())
        .max_concurrent_bidi_streams(UNADMITTED_BIDI_STREAMS.into())
        .max_concurrent_uni_streams(0u32.into())
        .datagram_receive_buffer_size(None);
    Arc::new(transport)
}

/// Raises an admitted client's connection to [`ADMITTED_RECEIVE_WINDOW`]
/// and [`ADMITTED_BIDI_STREAMS`] (model downloads).
pub fn admit(connection: &quinn::Connection) {
    connection.set_receive_window(ADMITTED_RECEIVE_WINDOW.into());
    connection.set_max_concurrent_bi_streams(ADMITTED_BIDI_STREAMS.into());
}

/// The coordinator's QUIC server configuration: TLS 1.3 with `certificate`
/// and its `key` (both DER), ALPN [`ALPN`] only.
pub fn server_config(certificate: Vec<u8>, key: Vec<u8>) -> Result<quinn::ServerConfig, TlsError> {
    let key = PrivateKeyDer::try_from(key).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(certificate)], key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicServerConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(server_transport());
    Ok(config)
}

/// A client configuration that accepts only the certificate whose SHA-256
/// is `pinned`, with ALPN [`ALPN`].
pub fn client_config(pinned: [u8; 32]) -> Result<quinn::ClientConfig, TlsError> {
    let provider = provider();
    let verifier = PinnedCertificate {
        fingerprint: pinned,
        algorithms: provider.signature_verification_algorithms,
    };
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport()));
    Ok(config)
}

/// Trusts one certificate, by fingerprint; checks handshake signatures.
#[derive(Debug)]
struct PinnedCertificate {
    fingerprint: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = fingerprint(end_entity);
        if presented == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "coordinator certificate sha256 {} is not the pinned {}",
                hex::encode(presented),
                hex::encode(self.fingerprint)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The configuration allows TLS 1.3 only.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
