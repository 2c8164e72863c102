//! `GET /healthz`: the process is up and answering. Touches nothing else, so
//! an orchestrator does not restart a healthy server because its database
//! is briefly away (that is `/readyz`).

/// Always `200 ok`.
pub async fn get() -> &'static str {
    "ok"
}
