//! The sync core for phone apps through UniFFI: a local store, offline edits
//! and a background `sync_now()`.
//!
//! Not built yet: this crate is an empty library so the workspace has its
//! final shape. Nothing here is usable.
#![forbid(unsafe_code)]
