//! MCPHub: one MCP endpoint in front of many MCP servers. See ARCHITECTURE.md.
pub mod http;
pub mod protocol;
