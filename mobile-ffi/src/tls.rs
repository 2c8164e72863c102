//! The TLS configuration shared by HTTP and the sync WebSocket.
//!
//! rustls on the `ring` provider. Servers are verified against the system's
//! trust store: through `rustls-platform-verifier` on iOS, macOS, Windows and
//! Linux; on Android by reading the system CA directories directly, as Go's
//! TLS does there. The platform verifier's Android side needs a JNI
//! initialisation with the app's context and a Kotlin component that is not
//! on Maven Central, neither of which a JNA-loaded library can provide.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::ClientError;

/// Android's system CAs: the updatable store (Android 14 and later) first,
/// then the classic one. One PEM certificate per file, followed by a text
/// dump that the PEM reader skips.
#[cfg_attr(not(target_os = "android"), allow(dead_code))]
const ANDROID_CA_DIRS: &[&str] = &[
    "/apex/com.android.conscrypt/cacerts",
    "/system/etc/security/cacerts",
];

fn tls_error(e: impl std::fmt::Display) -> ClientError {
    ClientError::Config {
        detail: format!("cannot set up TLS: {e}"),
    }
}

/// The client configuration: the system's trust store, safe defaults.
pub(crate) fn client_config() -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?;
    #[cfg(not(target_os = "android"))]
    let builder = {
        use rustls_platform_verifier::BuilderVerifierExt;
        builder.with_platform_verifier().map_err(tls_error)?
    };
    #[cfg(target_os = "android")]
    let builder = builder.with_root_certificates(roots_from_first_dir(ANDROID_CA_DIRS)?);
    Ok(Arc::new(builder.with_no_client_auth()))
}

/// The certificates of the first of `dirs` that holds any. Files that are
/// not certificates are skipped, like a platform store skips them.
#[cfg_attr(not(target_os = "android"), allow(dead_code))]
fn roots_from_first_dir(dirs: &[&str]) -> Result<RootCertStore, ClientError> {
    for dir in dirs {
        let roots = roots_in(Path::new(dir));
        if !roots.is_empty() {
            return Ok(roots);
        }
    }
    Err(tls_error(format!(
        "no CA certificates in {}",
        dirs.join(" or ")
    )))
}

fn roots_in(dir: &Path) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return roots;
    };
    for entry in entries.flatten() {
        if let Ok(certs) = CertificateDer::pem_file_iter(entry.path()) {
            roots.add_parsable_certificates(certs.flatten());
        }
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A public root (ISRG Root X2), as Android stores it: the PEM block,
    /// then the text dump.
    const ROOT_PEM: &str = include_str!("tls/isrg-root-x2.pem");

    #[test]
    fn roots_come_from_the_first_directory_that_has_any() {
        let empty = tempfile::tempdir().expect("tempdir");
        let store = tempfile::tempdir().expect("tempdir");
        let android_style =
            format!("{ROOT_PEM}Certificate:\n    Data:\n        Version: 3 (0x2)\n");
        std::fs::write(store.path().join("3fb36b73.0"), android_style).expect("write");
        std::fs::write(store.path().join("README"), "not a certificate").expect("write");
        let dirs = [
            empty.path().to_str().expect("utf-8"),
            store.path().to_str().expect("utf-8"),
        ];
        let roots = roots_from_first_dir(&dirs).expect("roots");
        assert_eq!(roots.len(), 1);
    }

    #[test]
    fn no_certificates_anywhere_is_a_config_error() {
        let empty = tempfile::tempdir().expect("tempdir");
        let dirs = [
            empty.path().to_str().expect("utf-8"),
            "/nonexistent/cacerts",
        ];
        assert!(matches!(
            roots_from_first_dir(&dirs),
            Err(ClientError::Config { .. })
        ));
    }
}
