//! MCPHub: one MCP endpoint in front of many MCP servers. See ARCHITECTURE.md.
// No `unsafe` in the hub: sockets are converted and peeked through
// mio's, std's and socket2's safe APIs (issue 15, item 8). The one exception
// is `upstream::stdio::process` (issue 19): `setrlimit` between fork and exec
// (`CommandExt::pre_exec` is unsafe) and signals to a process group
// (`kill(-pgid)`), each block with its SAFETY note. `deny`, not `forbid`, so
// that module alone can allow it.
#![deny(unsafe_code)]
pub mod config;
pub mod http;
pub mod protocol;
pub mod upstream;
pub mod singleflight;
pub mod catalog;
pub mod hub;
pub mod store;
pub mod users;
pub mod limits;
pub mod cluster;
pub mod metrics;
pub mod trace;
pub mod logging;
pub mod threads;
pub mod random;
