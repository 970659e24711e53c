//! HKDF-SHA256 key derivation with typed domain separation.
//!
//! Every derived key is bound to what it is for and where it is used. The HKDF
//! `info` is
//!
//! ```text
//! "fedstake/secagg/v1/" || purpose || task id (32 bytes) || round (u64 BE)
//!   || attempt (u32 BE) || group (u32 BE) || lower client index (u32 BE)
//!   || higher client index (u32 BE)
//! ```
//!
//! with `purpose` one of `mask`, `share-encryption`, `self-mask`, `grouping`. The purposes
//! have different lengths and everything after them has a fixed length, so the
//! encoding is injective. The info is only built by [`DerivationInfo`] from a
//! [`Context`], a [`Purpose`] and a [`ClientPair`], never by hand. The salt is
//! empty: the input keying material (an X25519 shared secret or a fresh random
//! seed) already carries the entropy.

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// Version and protocol prefix of every HKDF info.
pub const INFO_PREFIX: &[u8] = b"fedstake/secagg/v1/";

/// Where a key is used: one secure-aggregation attempt of one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Context {
    /// Task identifier (e.g. the hash of the task spec).
    pub task_id: [u8; 32],
    /// Training round.
    pub round: u64,
    /// Attempt of the round (restarts after failures use a new attempt).
    pub attempt: u32,
    /// Group index within the round.
    pub group: u32,
}

impl Context {
    /// Length of [`Context::to_bytes`].
    pub const ENCODED_LEN: usize = 32 + 8 + 4 + 4;

    /// Task id, round (BE), attempt (BE) and group (BE), concatenated.
    pub fn to_bytes(&self) -> [u8; Self::ENCODED_LEN] {
        let mut bytes = [0u8; Self::ENCODED_LEN];
        bytes[..32].copy_from_slice(&self.task_id);
        bytes[32..40].copy_from_slice(&self.round.to_be_bytes());
        bytes[40..44].copy_from_slice(&self.attempt.to_be_bytes());
        bytes[44..48].copy_from_slice(&self.group.to_be_bytes());
        bytes
    }
}

/// What a derived key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Seed of the pairwise mask between two clients.
    Mask,
    /// Key encrypting the Shamir shares one client sends another.
    ShareEncryption,
    /// Seed of a client's self mask, derived from its random self-mask seed.
    SelfMask,
    /// Key of the shuffle that splits a round's cohort into groups (from the
    /// round's public seed; the context's group and the pair are 0).
    Grouping,
    /// Seed of a client's stochastic rounding of its input (from its own
    /// secret key).
    Rounding,
}

impl Purpose {
    /// The label written into the HKDF info.
    pub fn label(self) -> &'static [u8] {
        match self {
            Purpose::Mask => b"mask",
            Purpose::ShareEncryption => b"share-encryption",
            Purpose::SelfMask => b"self-mask",
            Purpose::Grouping => b"grouping",
            Purpose::Rounding => b"rounding",
        }
    }
}

/// Two client indices in ascending order, so both clients of a pair derive the same
/// key. A self mask uses the pair `(i, i)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientPair {
    lower: u32,
    higher: u32,
}

impl ClientPair {
    /// The pair of `a` and `b` in either order.
    pub fn new(a: u32, b: u32) -> Self {
        Self {
            lower: a.min(b),
            higher: a.max(b),
        }
    }

    /// The pair `(client, client)` used for a client's self mask.
    pub fn single(client: u32) -> Self {
        Self::new(client, client)
    }

    /// The lower index.
    pub fn lower(self) -> u32 {
        self.lower
    }

    /// The higher index.
    pub fn higher(self) -> u32 {
        self.higher
    }
}

/// The complete HKDF info of one derivation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DerivationInfo {
    /// Where the key is used.
    pub context: Context,
    /// What it is for.
    pub purpose: Purpose,
    /// Between which clients.
    pub pair: ClientPair,
}

impl DerivationInfo {
    /// The info bytes described in the module documentation.
    pub fn to_bytes(&self) -> Vec<u8> {
        let label = self.purpose.label();
        let mut info =
            Vec::with_capacity(INFO_PREFIX.len() + label.len() + Context::ENCODED_LEN + 8);
        info.extend_from_slice(INFO_PREFIX);
        info.extend_from_slice(label);
        info.extend_from_slice(&self.context.to_bytes());
        info.extend_from_slice(&self.pair.lower.to_be_bytes());
        info.extend_from_slice(&self.pair.higher.to_be_bytes());
        info
    }
}

/// A 32-byte derived key or seed; zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct DerivedKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DerivedKey(..)")
    }
}

impl DerivedKey {
    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// HKDF-SHA256 of `input_key_material` (empty salt) with the info of `context`,
/// `purpose` and `pair`.
pub fn derive_key(
    input_key_material: &[u8],
    context: &Context,
    purpose: Purpose,
    pair: ClientPair,
) -> DerivedKey {
    let info = DerivationInfo {
        context: *context,
        purpose,
        pair,
    }
    .to_bytes();
    let mut okm = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's 255 * 32 byte limit, so expand cannot fail.
    let hkdf = Hkdf::<Sha256>::new(None, input_key_material);
    if hkdf.expand(&info, okm.as_mut()).is_err() {
        unreachable!("HKDF-SHA256 can always expand 32 bytes");
    }
    DerivedKey(okm)
}

/// The self-mask PRG seed of `client` from its random self-mask seed `b`.
pub fn self_mask_seed(self_mask_secret: &[u8; 32], context: &Context, client: u32) -> DerivedKey {
    derive_key(
        self_mask_secret,
        context,
        Purpose::SelfMask,
        ClientPair::single(client),
    )
}
