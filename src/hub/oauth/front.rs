//! The metadata (RFC 9728, RFC 8414) and Dynamic Client Registration
//! (RFC 7591) endpoints: a placeholder answering 404 until the
//! "oauth-front" helper's version replaces this file.

use crate::http::{Request, Response};
use crate::hub::Hub;

/// Serves the paths of [`super::owns`] other than `/oauth/token` and
/// `/oauth/revoke` (for now: 404 JSON).
pub(crate) fn front(hub: &Hub, req: &Request) -> Response {
    let _ = (hub, req);
    super::error_response(404, "not_found", "no such OAuth endpoint")
}
