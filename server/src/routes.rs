//! HTTP handlers, one file per URL (the route table is `app::router`).

pub mod healthz;
pub mod metrics;
pub mod openapi;
pub mod readyz;
pub mod v1;
