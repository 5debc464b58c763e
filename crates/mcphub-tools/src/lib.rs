//! Measuring tools beside the hub, built on its library (`mcphub::http`,
//! `mcphub::protocol`, `mcphub::config`); the hub itself never links them.
//!
//! - [`load`] and the `mcphub-load` binary: N concurrent MCP clients calling
//!   one tool in rounds (docs/decisions.md D8), with a summary of outcomes by kind.
//! - the `mcphub-forward` binary: a bare HTTP forwarder on the hub's HTTP
//!   layer, the floor any gateway pays (`make bench`); it shares
//!   [`load::UntimedResolver`].
#![forbid(unsafe_code)]

pub mod load;
