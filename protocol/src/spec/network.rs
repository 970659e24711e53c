//! Chain and coordinator sections, and the syntax of addresses, endpoints and fingerprints.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::SpecError;
use super::amount::u64_wide;

/// Chain id used when `[chain]` does not give one: 31337, the id of the embedded chain and of a
/// local anvil node.
pub const DEFAULT_CHAIN_ID: u64 = 31337;

/// Chain endpoint and reward contract (`[chain]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainSpec {
    /// `"embedded"` (in-process EVM, state kept by the coordinator), `"embedded:<path>"`
    /// (in-process EVM persisted at `<path>`) or an `http://` / `https://` JSON-RPC URL.
    /// Default `"embedded"`.
    pub endpoint: String,
    /// `FederatedRewards` contract address, `0x` and 40 hex digits. Required with a JSON-RPC
    /// endpoint; optional on the embedded chain, which deploys its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// EIP-155 chain id, at least 1; default [`DEFAULT_CHAIN_ID`].
    #[serde(with = "u64_wide")]
    pub chain_id: u64,
}

impl Default for ChainSpec {
    fn default() -> Self {
        ChainSpec {
            endpoint: "embedded".to_owned(),
            contract: None,
            chain_id: DEFAULT_CHAIN_ID,
        }
    }
}

/// A parsed `chain.endpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainEndpoint {
    /// The in-process EVM.
    Embedded {
        /// Where its state is persisted, as written (relative to the task file's directory);
        /// `None` for `"embedded"`, where the coordinator keeps it with its own state.
        path: Option<PathBuf>,
    },
    /// An EVM JSON-RPC endpoint.
    JsonRpc {
        /// The URL, as written.
        url: String,
    },
}

impl ChainEndpoint {
    /// Parses an endpoint string; the error says what is wrong.
    pub fn parse(text: &str) -> Result<ChainEndpoint, String> {
        if text == "embedded" {
            return Ok(ChainEndpoint::Embedded { path: None });
        }
        if let Some(path) = text.strip_prefix("embedded:") {
            if path.trim().is_empty() {
                return Err("\"embedded:\" needs a path after the colon".to_owned());
            }
            return Ok(ChainEndpoint::Embedded {
                path: Some(PathBuf::from(path)),
            });
        }
        let rest = text
            .strip_prefix("http://")
            .or_else(|| text.strip_prefix("https://"))
            .ok_or_else(|| {
                format!(
                    "{text:?} is neither \"embedded\", \"embedded:<path>\" nor an http:// or \
                     https:// URL"
                )
            })?;
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "{text:?} is not a valid URL (empty host or whitespace)"
            ));
        }
        Ok(ChainEndpoint::JsonRpc {
            url: text.to_owned(),
        })
    }
}

impl ChainSpec {
    /// The parsed endpoint; an error for a malformed one.
    pub fn parsed_endpoint(&self) -> Result<ChainEndpoint, SpecError> {
        ChainEndpoint::parse(&self.endpoint)
            .map_err(|reason| SpecError::invalid("chain.endpoint", reason))
    }

    /// The contract address as bytes, if given; an error for a malformed address.
    pub fn contract_address(&self) -> Result<Option<[u8; 20]>, SpecError> {
        self.contract
            .as_deref()
            .map(parse_eth_address)
            .transpose()
            .map_err(|reason| SpecError::invalid("chain.contract", reason))
    }
}

/// Coordinator address and certificate pin (`[coordinator]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorSpec {
    /// Where clients connect over QUIC: `host:port` with a DNS name, an IPv4 address or a
    /// bracketed IPv6 address, and a port in `1..=65535`.
    pub address: String,
    /// SHA-256 of the coordinator's DER certificate, 64 hex digits (no colons), pinned by the
    /// clients.
    pub tls_fingerprint: String,
}

impl CoordinatorSpec {
    /// The address split into host (brackets removed for IPv6) and port; an error for a
    /// malformed one.
    pub fn host_port(&self) -> Result<(String, u16), SpecError> {
        parse_host_port(&self.address)
            .map_err(|reason| SpecError::invalid("coordinator.address", reason))
    }

    /// The pinned certificate fingerprint as bytes; an error for a malformed one.
    pub fn fingerprint(&self) -> Result<[u8; 32], SpecError> {
        parse_sha256_hex(&self.tls_fingerprint)
            .map_err(|reason| SpecError::invalid("coordinator.tls_fingerprint", reason))
    }
}

/// Parses an Ethereum address: `0x` followed by 40 hex digits, any case. The EIP-55 checksum of
/// a mixed-case address is not verified.
pub fn parse_eth_address(text: &str) -> Result<[u8; 20], String> {
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| format!("{text:?} is not an address: expected 0x and 40 hex digits"))?;
    let mut bytes = [0u8; 20];
    hex::decode_to_slice(digits, &mut bytes).map_err(|_| {
        format!(
            "{text:?} is not an address: expected 0x and 40 hex digits, found {} characters \
             after 0x",
            digits.chars().count()
        )
    })?;
    Ok(bytes)
}

/// Parses a SHA-256 digest written as 64 hex digits, any case, no separators.
pub fn parse_sha256_hex(text: &str) -> Result<[u8; 32], String> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes).map_err(|_| {
        format!(
            "{text:?} is not a SHA-256 digest: expected 64 hex digits without separators, found \
             {} characters",
            text.chars().count()
        )
    })?;
    Ok(bytes)
}

/// Splits `host:port`: the host is an IPv4 address, a bracketed IPv6 address (`[::1]:4433`) or a
/// DNS name (letters, digits, `-` and `.`, labels of 1 to 63 characters, at most 253 in all);
/// the port is in `1..=65535`.
fn parse_host_port(text: &str) -> Result<(String, u16), String> {
    if let Ok(socket) = text.parse::<SocketAddr>() {
        if socket.port() == 0 {
            return Err(format!("{text:?}: port 0 is not a valid port"));
        }
        return Ok((socket.ip().to_string(), socket.port()));
    }
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} is not host:port (no port)"))?;
    let port = match port.parse::<u16>() {
        Ok(port) if port != 0 => port,
        _ => return Err(format!("{text:?}: {port:?} is not a port in 1..=65535")),
    };
    let valid_label = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(valid_label) {
        return Err(format!(
            "{text:?}: {host:?} is not a host name or IP address (IPv6 needs brackets: \
             \"[::1]:4433\")"
        ));
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            parse_host_port("127.0.0.1:4433"),
            Ok(("127.0.0.1".into(), 4433))
        );
        assert_eq!(parse_host_port("[::1]:4433"), Ok(("::1".into(), 4433)));
        assert_eq!(
            parse_host_port("coord.example.org:443"),
            Ok(("coord.example.org".into(), 443))
        );
        assert_eq!(parse_host_port("localhost:1"), Ok(("localhost".into(), 1)));
        for bad in [
            "localhost",
            "localhost:0",
            "localhost:65536",
            ":4433",
            "::1:4433",
            "bad host:1",
            "-x.org:1",
            "a..b:1",
            "quic://host:1",
            "127.0.0.1:0",
        ] {
            assert!(parse_host_port(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            ChainEndpoint::parse("embedded"),
            Ok(ChainEndpoint::Embedded { path: None })
        );
        assert_eq!(
            ChainEndpoint::parse("embedded:./chain.db"),
            Ok(ChainEndpoint::Embedded {
                path: Some("./chain.db".into())
            })
        );
        assert!(matches!(
            ChainEndpoint::parse("http://127.0.0.1:8545"),
            Ok(ChainEndpoint::JsonRpc { .. })
        ));
        for bad in [
            "",
            "embedded:",
            "embed",
            "ws://x",
            "http://",
            "https:// x",
            "127.0.0.1:8545",
        ] {
            assert!(ChainEndpoint::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn addresses_and_fingerprints() {
        let address = format!("0x{}", "aB".repeat(20));
        assert_eq!(parse_eth_address(&address), Ok([0xab; 20]));
        for bad in [
            "",
            "0x",
            &"ab".repeat(20),
            &format!("0x{}", "ab".repeat(19)),
            "0xzz",
        ] {
            assert!(parse_eth_address(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_sha256_hex(&"0F".repeat(32)), Ok([0x0f; 32]));
        let colons = vec!["0f"; 32].join(":");
        assert!(parse_sha256_hex(&colons).is_err());
        assert!(parse_sha256_hex(&"0f".repeat(31)).is_err());
    }
}
