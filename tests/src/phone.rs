//! What the benches share about the phone library's client. This library
//! does not depend on `mobile-ffi` (only the benches and tests do), so it is
//! a macro over whatever client the caller holds.

/// Logs a `mobile_ffi::DiaryClient` in as `username` with the demo password
/// and runs its first sync, which must succeed. In an async function.
#[macro_export]
macro_rules! log_in_and_sync {
    ($client:expr, $username:expr) => {{
        let client = &$client;
        client
            .login(
                ::std::string::ToString::to_string($username),
                $crate::DEMO_PASSWORD.to_owned(),
            )
            .await
            .expect("login");
        let first = client.sync_now(60_000).await;
        assert!(first.error.is_none(), "{first:?}");
    }};
}
