//! Who may read `/metrics`: without a token, clients on this machine only;
//! with one, whoever presents it (and nobody else, local or not).

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use server::secret::Secret;
use test_support::Routed;

async fn app(token: Option<&str>) -> Routed {
    Routed::sqlite(&[8; 32], |config| {
        config.metrics_token = token.map(|t| Secret::new(t.to_owned()));
    })
    .await
}

async fn scrape(app: &Routed, from: &str, bearer: Option<&str>) -> StatusCode {
    let mut request = Request::get("/metrics");
    if let Some(token) = bearer {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let mut request = request.body(Body::empty()).expect("request");
    let peer: SocketAddr = from.parse().expect("address");
    request.extensions_mut().insert(ConnectInfo(peer));
    app.call(request).await.status
}

#[tokio::test]
async fn without_a_token_only_this_machine_reads_metrics() {
    let app = app(None).await;
    assert_eq!(scrape(&app, "127.0.0.1:5000", None).await, StatusCode::OK);
    assert_eq!(scrape(&app, "[::1]:5000", None).await, StatusCode::OK);
    assert_eq!(
        scrape(&app, "203.0.113.9:5000", None).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        scrape(&app, "10.1.2.3:5000", Some("guess")).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn with_a_token_only_its_holder_reads_metrics() {
    let app = app(Some("s3cret-scrape-token")).await;
    assert_eq!(
        scrape(&app, "203.0.113.9:5000", Some("s3cret-scrape-token")).await,
        StatusCode::OK
    );
    for (from, bearer) in [
        ("203.0.113.9:5000", None),
        ("203.0.113.9:5000", Some("s3cret-scrape-tokem")),
        ("203.0.113.9:5000", Some("s3cret")),
        ("127.0.0.1:5000", None),
    ] {
        assert_eq!(
            scrape(&app, from, bearer).await,
            StatusCode::UNAUTHORIZED,
            "{from} {bearer:?}"
        );
    }
}
