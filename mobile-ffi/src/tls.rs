//! The TLS configuration shared by HTTP and the sync WebSocket.

use std::sync::Arc;

use rustls_platform_verifier::BuilderVerifierExt;

use crate::ClientError;

/// rustls on the `ring` provider, verifying servers against the platform's
/// trust store (so a unit's private CA installed on the phone is trusted).
///
/// On Android the platform verifier must first be initialised through JNI
/// with the app's context (see README, "TLS"); without that, an `https`
/// connection fails as `Offline` with the verifier's message.
pub(crate) fn client_config() -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let tls_error = |e: rustls::Error| ClientError::Config {
        detail: format!("cannot set up TLS: {e}"),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_platform_verifier()
        .map_err(tls_error)?
        .with_no_client_auth();
    Ok(Arc::new(config))
}
