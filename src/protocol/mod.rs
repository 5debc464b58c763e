//! MCP protocol rules as pure functions and types, no I/O (docs/decisions.md D9: keep the
//! protocol sans-IO, tested with literal JSON).
//!
//! - [`jsonrpc`]: parsing JSON-RPC 2.0 messages and shaping responses/errors.
//! - [`era`]: protocol versions, the legacy/modern era of a request.
//! - [`headers`]: 2026-07-28 request-metadata headers (`MCP-Protocol-Version`,
//!   `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`), their Base64 sentinel encoding and
//!   their validation against the body.
//! - [`sse`]: reading a `text/event-stream` body into events.

pub mod era;
pub mod headers;
pub mod jsonrpc;
pub mod sse;

pub use era::{Era, LEGACY_VERSIONS, LATEST_LEGACY, MODERN_VERSION};
pub use jsonrpc::{ErrorObject, IdText, Incoming, Rejection, RequestId};

/// `_meta` key carrying the protocol version of a modern request (2026-07-28 schema, `RequestMetaObject`).
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key carrying the client's `Implementation` on a modern request.
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key carrying the client's capabilities on a modern request.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key carrying the desired log level on a modern request.
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
/// `_meta` key naming the server on a modern result.
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// JSON-RPC and MCP error codes used by the hub.
pub mod codes {
    /// Invalid JSON (JSON-RPC 2.0).
    pub const PARSE_ERROR: i64 = -32700;
    /// Not a valid request object (JSON-RPC 2.0).
    pub const INVALID_REQUEST: i64 = -32600;
    /// Unknown method (JSON-RPC 2.0).
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Bad params (JSON-RPC 2.0).
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal error (JSON-RPC 2.0).
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Implementation-defined server error; the hub uses it for upstream failures
    /// and rate limits (docs/decisions.md D7).
    pub const SERVER_ERROR: i64 = -32000;
    /// Headers do not match the body (2026-07-28 streamable-http, Server Validation).
    pub const HEADER_MISMATCH: i64 = -32020;
    /// A required client capability is missing (2026-07-28 schema).
    pub const MISSING_CLIENT_CAPABILITY: i64 = -32021;
    /// Unsupported protocol version (2026-07-28 versioning).
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

    /// Whether a code identifies a modern (2026-07-28) server when received in
    /// answer to a modern probe (2026-07-28 streamable-http, Backward Compatibility).
    pub fn is_recognised_modern(code: i64) -> bool {
        matches!(code, HEADER_MISMATCH | MISSING_CLIENT_CAPABILITY | UNSUPPORTED_PROTOCOL_VERSION)
    }
}
