//! The server's HTTP API as the phone uses it: login, refresh, logout, who am
//! I, and which documents are mine.

#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::{ClientError, Me};

/// How long connecting may take before the phone counts itself offline. A
/// weak link is slow, not absent, so this is generous; the caller's
/// deadline bounds the whole sync anyway.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A token pair as the server hands it out.
#[derive(Debug, Clone)]
pub(crate) struct Tokens {
    pub access: String,
    /// When the access token expires, by the phone's clock.
    pub access_expires_ms: i64,
    pub refresh: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: String,
    expires_in: u64,
}

#[derive(Deserialize)]
struct MeResponse {
    username: String,
    display_name: String,
    role: String,
    unit_code: String,
    unit_name: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: String,
}

/// The HTTP side of the server.
#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    base: String,
    #[cfg(feature = "tls")]
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Http {
    pub(crate) fn new(base: &str) -> Result<Self, ClientError> {
        let builder = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT);
        #[cfg(feature = "tls")]
        let tls = crate::tls::client_config()?;
        #[cfg(feature = "tls")]
        let builder = builder.tls_backend_preconfigured(rustls::ClientConfig::clone(&tls));
        let client = builder.build().map_err(|e| ClientError::Config {
            detail: format!("cannot build the HTTP client: {e}"),
        })?;
        Ok(Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            #[cfg(feature = "tls")]
            tls,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Turns an answer into its body, or into the error it means.
    async fn check(response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.error.message)
            .unwrap_or(text);
        Err(if status == reqwest::StatusCode::UNAUTHORIZED {
            ClientError::Unauthorised { detail: message }
        } else {
            ClientError::ServerRefused {
                status: status.as_u16(),
                detail: message,
            }
        })
    }

    fn tokens(t: TokenResponse, now_ms: i64) -> Tokens {
        let ttl_ms = i64::try_from(t.expires_in.saturating_mul(1000)).unwrap_or(i64::MAX);
        Tokens {
            access: t.access_token,
            access_expires_ms: now_ms.saturating_add(ttl_ms),
            refresh: t.refresh_token,
        }
    }

    pub(crate) async fn login(
        &self,
        username: &str,
        password: &str,
        device_id: &str,
        now_ms: i64,
    ) -> Result<Tokens, ClientError> {
        let response = self
            .client
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"username": username, "password": password, "device_id": device_id}))
            .send()
            .await?;
        let body: TokenResponse = Self::check(response).await?.json().await?;
        Ok(Self::tokens(body, now_ms))
    }

    pub(crate) async fn refresh(&self, refresh: &str, now_ms: i64) -> Result<Tokens, ClientError> {
        let response = self
            .client
            .post(self.url("/api/v1/auth/refresh"))
            .json(&json!({"refresh_token": refresh}))
            .send()
            .await?;
        let body: TokenResponse = Self::check(response).await?.json().await?;
        Ok(Self::tokens(body, now_ms))
    }

    pub(crate) async fn logout(&self, refresh: &str) -> Result<(), ClientError> {
        let response = self
            .client
            .post(self.url("/api/v1/auth/logout"))
            .json(&json!({"refresh_token": refresh}))
            .send()
            .await?;
        Self::check(response).await.map(drop)
    }

    pub(crate) async fn me(&self, access: &str) -> Result<Me, ClientError> {
        let response = self
            .client
            .get(self.url("/api/v1/me"))
            .bearer_auth(access)
            .send()
            .await?;
        let m: MeResponse = Self::check(response).await?.json().await?;
        Ok(Me {
            username: m.username,
            display_name: m.display_name,
            role: m.role,
            unit_code: m.unit_code,
            unit_name: m.unit_name,
        })
    }

    /// The TLS configuration for the sync WebSocket (the same as HTTP's).
    #[cfg(feature = "tls")]
    pub(crate) fn tls(&self) -> Arc<rustls::ClientConfig> {
        Arc::clone(&self.tls)
    }

    /// The WebSocket URL of the sync endpoint.
    pub(crate) fn sync_url(&self) -> Result<String, ClientError> {
        if let Some(rest) = self.base.strip_prefix("http://") {
            Ok(format!("ws://{rest}/api/v1/sync"))
        } else if let Some(rest) = self.base.strip_prefix("https://") {
            if cfg!(feature = "tls") {
                Ok(format!("wss://{rest}/api/v1/sync"))
            } else {
                Err(ClientError::Config {
                    detail: "this build has no TLS (build mobile-ffi with --features tls)"
                        .to_owned(),
                })
            }
        } else {
            Err(ClientError::Config {
                detail: format!(
                    "server URL {:?} must start with http:// or https://",
                    self.base
                ),
            })
        }
    }
}
