//! The Redis store (several hub instances share one Redis). Placeholder
//! until the implementation lands; see `super::SessionStore`.
