//! Tokens the server must refuse, at the WebSocket upgrade (header and
//! `?token=`) and on the JSON API, against a real `server` process.

use e2e_tests::{ServerProcess, TokenIn, open_socket, tokens};
use tokio_tungstenite::tungstenite::{self, http};

/// Whether the sync endpoint upgrades a connection with `token`.
async fn upgrades(server: &ServerProcess, token: Option<&str>, token_in: TokenIn) -> bool {
    match open_socket(server.addr(), token, token_in).await {
        Ok(_) => true,
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(
                response.status(),
                http::StatusCode::UNAUTHORIZED,
                "a refused upgrade is 401"
            );
            false
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

async fn documents_status(server: &ServerProcess, token: &str) -> u16 {
    server.get_json("/api/v1/me/documents", token).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_forged_and_unsigned_tokens_are_refused() {
    let server = ServerProcess::start().await;
    let issued = server.login("cadre01", "phone").await;
    let key = server.jwt_secret();

    // The crafting is right: the same claims re-signed with the server's
    // key pass everywhere, so each refusal below is about its one change.
    let control = tokens::resigned(&issued, &key);
    for token in [&issued, &control] {
        assert!(upgrades(&server, Some(token), TokenIn::Header).await);
        assert!(upgrades(&server, Some(token), TokenIn::Query).await);
        assert_eq!(documents_status(&server, token).await, 200);
    }

    for (what, token) in [
        ("expired", tokens::expired(&issued, &key)),
        ("forged", tokens::forged(&issued)),
        ("alg none", tokens::alg_none(&issued)),
    ] {
        assert!(
            !upgrades(&server, Some(&token), TokenIn::Header).await,
            "{what} token upgraded (header)"
        );
        assert!(
            !upgrades(&server, Some(&token), TokenIn::Query).await,
            "{what} token upgraded (?token=)"
        );
        assert_eq!(
            documents_status(&server, &token).await,
            401,
            "{what} token on /api/v1/me/documents"
        );
    }
    assert!(!upgrades(&server, None, TokenIn::Header).await);
}
