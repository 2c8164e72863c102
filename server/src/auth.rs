//! Identity: password hashing, access tokens (JWT), refresh tokens, and the
//! [`AuthUser`] extractor that authenticates a request.
//!
//! The flow: `POST /api/v1/auth/login` checks the password
//! ([`password::verify_password`]) and answers a short-lived access token
//! ([`jwt::JwtKeys::issue`]) plus an opaque refresh token
//! ([`refresh::new_refresh_token`]) whose sha256 is stored. `POST
//! /api/v1/auth/refresh` rotates the refresh token; presenting a rotated one
//! again revokes its family. Every authenticated route takes an [`AuthUser`].

mod extract;
pub mod jwt;
pub mod limits;
pub mod password;
pub mod refresh;

pub use extract::AuthUser;
pub use jwt::{Claims, JwtError, JwtKeys};
