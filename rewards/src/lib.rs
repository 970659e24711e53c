//! Payout and slashing policy (being written).
