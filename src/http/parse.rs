//! Sans-IO request reader (implementation owned by the HTTP-layer work).
