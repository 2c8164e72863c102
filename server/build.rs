//! `sqlx::migrate!` embeds the migration files at compile time, but Cargo does
//! not know about them; without this a newly added migration would not be
//! picked up until some Rust file changed.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
