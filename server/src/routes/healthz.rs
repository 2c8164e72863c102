//! `GET /healthz`: the process is up and answering. Touches nothing else, so
//! an orchestrator does not restart a healthy server because its database
//! is briefly away (that is `/readyz`).

/// Always `200 ok`.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "The process is up", content_type = "text/plain", body = String))
)]
pub async fn get() -> &'static str {
    "ok"
}
