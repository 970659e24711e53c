//! Serde helpers for integers wider than TOML's `i64`: token amounts (`u128`, in base units) and
//! the chain id (`u64`).
//!
//! Both accept a non-negative TOML integer or a decimal string (digits, optionally grouped with
//! single underscores as in TOML integers: `"1_000_000_000_000_000_000"`).

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;

/// Parses a token amount in base units: decimal digits, optionally grouped by single
/// underscores between digits (`"1_000_000"`), no sign, at most `u128::MAX`.
pub fn parse_token_amount(text: &str) -> Result<u128, String> {
    let invalid = || {
        format!(
            "{text:?} is not a decimal amount (digits, optionally grouped with underscores like \
             \"1_000_000\")"
        )
    };
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes[0] == b'_' || bytes[bytes.len() - 1] == b'_' {
        return Err(invalid());
    }
    let mut value: u128 = 0;
    let mut previous_underscore = false;
    for &b in bytes {
        match b {
            b'0'..=b'9' => {
                value = value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u128::from(b - b'0')))
                    .ok_or_else(|| {
                        format!("{text:?} is larger than the largest amount 2^128 - 1")
                    })?;
                previous_underscore = false;
            }
            b'_' if !previous_underscore => previous_underscore = true,
            _ => return Err(invalid()),
        }
    }
    Ok(value)
}

struct WideVisitor;

impl Visitor<'_> for WideVisitor {
    type Value = u128;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer or a decimal string")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u128, E> {
        u128::try_from(v)
            .map_err(|_| E::custom(format!("{v} is negative; expected an amount >= 0")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u128, E> {
        Ok(u128::from(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<u128, E> {
        Ok(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u128, E> {
        parse_token_amount(v).map_err(E::custom)
    }
}

/// `u128` token amounts: always serialized as a decimal string (TOML integers stop at 2^63 - 1,
/// one wei amount among many does not), deserialized from an integer or a decimal string.
pub(crate) mod u128_amount {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<u128, D::Error> {
        deserializer.deserialize_any(WideVisitor)
    }
}

/// `u64` chain id: serialized as an integer when it fits in `i64` (every real chain id), as a
/// decimal string otherwise, so serialization never fails; deserialized from either.
pub(crate) mod u64_wide {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        if i64::try_from(*value).is_ok() {
            serializer.serialize_u64(*value)
        } else {
            serializer.collect_str(value)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        let wide = deserializer.deserialize_any(WideVisitor)?;
        u64::try_from(wide)
            .map_err(|_| de::Error::custom(format!("{wide} is larger than 2^64 - 1")))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_token_amount;

    #[test]
    fn parses_grouped_amounts() {
        assert_eq!(parse_token_amount("0"), Ok(0));
        assert_eq!(
            parse_token_amount("1_000_000_000_000_000_000"),
            Ok(1_000_000_000_000_000_000)
        );
        assert_eq!(parse_token_amount(&u128::MAX.to_string()), Ok(u128::MAX));
    }

    #[test]
    fn rejects_malformed_amounts() {
        for bad in [
            "", "_1", "1_", "1__0", "-1", "+1", "1e18", "0x10", " 1", "1.0",
        ] {
            assert!(parse_token_amount(bad).is_err(), "{bad:?} accepted");
        }
        let too_big = format!("{}0", u128::MAX);
        assert!(parse_token_amount(&too_big).is_err());
    }
}
