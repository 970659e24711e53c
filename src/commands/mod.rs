//! The subcommands' glue: read files and flags, call the library crates,
//! print results. No protocol or training logic lives here.

pub mod chain;
pub mod client;
pub mod coordinator;
pub mod demo;
pub mod keys;
pub mod rewards;
pub mod sim;
pub mod task;
