//! Configuration shared by the client and server sessions of one group.

use thiserror::Error;

use crate::graph::GroupTopology;
use crate::identity::Address;
use crate::kdf::Context;
use crate::messages::DecodeLimits;

/// Why a session configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The address list does not match the group size.
    #[error("{addresses} member addresses for a group of {group_size}")]
    AddressCountMismatch {
        /// Addresses given.
        addresses: usize,
        /// Group size of the topology.
        group_size: u32,
    },
    /// The dimension is zero or above the `u32` wire limit.
    #[error("vector dimension {0} must be in 1..=u32::MAX")]
    DimensionOutOfRange(usize),
    /// The client index is not a member.
    #[error("client index {index} is not in the group of {group_size}")]
    IndexOutOfRange {
        /// The index.
        index: u32,
        /// Group size.
        group_size: u32,
    },
}

/// What every participant of one group attempt agrees on in advance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Task, round, attempt and group: every message and key is bound to it.
    pub context: Context,
    /// Neighbourhood graph and Shamir threshold.
    pub topology: GroupTopology,
    /// Length of every (quantized) input vector.
    pub dimension: usize,
    /// Ethereum address of each member, by client index.
    pub member_addresses: Vec<Address>,
    /// Ethereum address of the server.
    pub server_address: Address,
}

impl SessionConfig {
    /// Checks that addresses match the group size and the dimension is usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let group_size = self.topology.graph().group_size();
        if self.member_addresses.len() != group_size as usize {
            return Err(ConfigError::AddressCountMismatch {
                addresses: self.member_addresses.len(),
                group_size,
            });
        }
        if self.dimension == 0 || u32::try_from(self.dimension).is_err() {
            return Err(ConfigError::DimensionOutOfRange(self.dimension));
        }
        Ok(())
    }

    /// Group size `n`.
    pub fn group_size(&self) -> u32 {
        self.topology.graph().group_size()
    }

    /// Shamir threshold `t` (as `usize`).
    pub fn threshold(&self) -> usize {
        self.topology.threshold() as usize
    }

    /// The fewest survivors a revealed sum may cover (as `usize`): see
    /// [`GroupTopology::min_survivors`].
    pub fn min_survivors(&self) -> usize {
        self.topology.min_survivors() as usize
    }

    /// Bounds for decoding this group's messages.
    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_members: self.group_size(),
            max_dimension: u32::try_from(self.dimension).unwrap_or(u32::MAX),
        }
    }

    /// The expected address of `sender`, if it is a member.
    pub fn address_of(&self, sender: u32) -> Option<&Address> {
        self.member_addresses.get(sender as usize)
    }
}

/// The five phases of a group attempt, in protocol order. A client that drops
/// "from" a phase sends nothing in it or after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// AdvertiseKeys.
    AdvertiseKeys,
    /// ShareKeys.
    ShareKeys,
    /// MaskedInput.
    MaskedInput,
    /// ConsistencyResponse.
    Consistency,
    /// UnmaskingResponse.
    Unmasking,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 5] = [
        Phase::AdvertiseKeys,
        Phase::ShareKeys,
        Phase::MaskedInput,
        Phase::Consistency,
        Phase::Unmasking,
    ];

    /// The phase's name as task specs write its deadline (`masked_input`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Phase::AdvertiseKeys => "advertise_keys",
            Phase::ShareKeys => "share_keys",
            Phase::MaskedInput => "masked_input",
            Phase::Consistency => "consistency",
            Phase::Unmasking => "unmasking",
        }
    }
}
