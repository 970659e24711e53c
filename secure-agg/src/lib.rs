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

pub mod kdf;
pub mod keys;
pub mod prg;
pub mod quantize;
pub mod shamir;
pub mod share_box;
