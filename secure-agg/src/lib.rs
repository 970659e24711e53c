//! Secure-aggregation building blocks for fedstake (SecAgg+, DESIGN section 4).
//!
//! Everything here is sans-IO: no network, no clocks, randomness only from a
//! caller-supplied generator. The modules are the primitives the client and
//! server sessions are built from:
//!
//! - [`quantize`]: clipping, fixed point with stochastic rounding into `Z_{2^32}`,
//!   and the overflow proof for a group sum;
//! - [`shamir`]: t-of-k sharing of 32-byte secrets over the Ristretto scalar field;
//! - [`keys`]: X25519 key pairs and agreement;
//! - [`kdf`]: HKDF-SHA256 with typed domain separation;
//! - [`prg`]: ChaCha20 keystream masks added to or removed from `u32` vectors;
//! - [`share_box`]: ChaCha20-Poly1305 encryption of share payloads between two clients.
//!
//! and the protocol for one group built from them:
//!
//! - [`graph`]: complete and Harary neighbourhood graphs, threshold and dropout tolerance;
//! - [`identity`]: Ethereum secp256k1 identities, recoverable signatures over Keccak-256;
//! - [`messages`]: the signed protocol messages and their bounded byte encoding;
//! - [`session`]: the configuration both sides agree on;
//! - [`client`] and [`server`]: the sans-IO SecAgg+ state machines.

pub mod client;
pub mod graph;
pub mod identity;
pub mod kdf;
pub mod keys;
pub mod messages;
pub mod prg;
pub mod quantize;
pub mod server;
pub mod session;
pub mod shamir;
pub mod share_box;
