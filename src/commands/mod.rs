//! The subcommands' glue: read files and flags, call the library crates,
//! print results. No protocol or training logic lives here.

pub mod client;
pub mod demo;
pub mod sim;
pub mod task;
