//! MCPHub: one MCP endpoint in front of many MCP servers. See ARCHITECTURE.md.
pub mod config;
pub mod http;
pub mod protocol;
pub mod mock;
pub mod upstream;
pub mod singleflight;
pub mod catalog;
pub mod hub;
pub mod store;
pub mod users;
pub mod load;
pub mod limits;
pub mod metrics;
pub mod trace;
pub mod logging;
