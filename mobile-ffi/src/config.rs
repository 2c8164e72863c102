//! What the app passes to `DiaryClient::open`.

/// Where the store lives and which server to sync with.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ClientConfig {
    /// A directory private to the app (Android `filesDir`, iOS Application
    /// Support). The store is one SQLite file in it, `diary.sqlite3`.
    pub data_dir: String,
    /// The server's base URL, `http://host:port` (tests) or `https://…`.
    pub server_url: String,
    /// A stable id of this installation, carried into the tokens and the
    /// server's audit log (e.g. a UUID made on first launch).
    pub device_id: String,
    /// The store's at-rest key: 64 hex digits (32 random bytes the app made
    /// once and keeps in the Android Keystore or the iOS Keychain). With a
    /// key, the whole store file (documents, indexes, tokens, and the
    /// write-ahead log) is encrypted; without one it is plain SQLite. Needs a
    /// build with the `encryption` feature (the bindings script's).
    #[uniffi(default = None)]
    pub at_rest_key: Option<String>,
}
