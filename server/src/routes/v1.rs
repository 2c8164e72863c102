//! Handlers under `/api/v1/`.

pub mod auth;
pub mod ledger;
pub mod me;
pub mod petitions;
pub mod sync;
