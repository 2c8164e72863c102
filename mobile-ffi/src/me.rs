//! Who is logged in on this phone.

/// The logged-in user as the server described them at login.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, uniffi::Record)]
pub struct Me {
    /// Login name.
    pub username: String,
    /// Name shown to people.
    pub display_name: String,
    /// `cadre`, `supervisor` or `admin`.
    pub role: String,
    /// Code of the user's unit.
    pub unit_code: String,
    /// Name of the user's unit (`柳树村`).
    pub unit_name: String,
}
