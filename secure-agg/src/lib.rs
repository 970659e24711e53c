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
//! - [`client`] and [`server`]: the sans-IO SecAgg+ state machines;
//! - [`memory`]: one group attempt driven through memory (lab, benchmarks, tests).
//!
//! and grouped robustness across groups:
//!
//! - [`grouping`]: the cohort split into groups of exactly `g` by a keyed
//!   shuffle under a public seed, regrouped every round; one server session per
//!   group yields that group's exact sum;
//! - [`attribution`]: per-client quality and flag evidence from the results
//!   the robust aggregator gave the group means, across rounds, and what it
//!   can and cannot attribute.

pub mod attribution;
pub mod client;
pub mod graph;
pub mod grouping;
pub mod identity;
pub mod kdf;
pub mod keys;
pub mod memory;
pub mod messages;
pub mod prg;
pub mod quantize;
pub mod server;
pub mod session;
pub mod shamir;
pub mod share_box;
