//! Handlers under `/api/v1/`.

pub mod audit;
pub mod auth;
pub mod cards;
pub mod devices;
pub mod exports;
pub mod ledger;
pub mod lists;
pub mod me;
pub mod petitions;
pub mod stats;
pub mod sync;
pub mod visits;
