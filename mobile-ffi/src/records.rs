//! The records as the app sees them: UniFFI mirrors of sync-core's types,
//! converted with `From`, so sync-core carries no FFI attributes. Ids are
//! UUID strings, times milliseconds since the epoch, dates `YYYY-MM-DD`.

pub mod petition;
pub mod service_card;
pub mod visit;

/// Mirrors a sync-core enum as a UniFFI enum with `From` both ways.
macro_rules! mirror_enum {
    ($(#[$meta:meta])* $name:ident = $core:path { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl From<$core> for $name {
            fn from(v: $core) -> Self {
                match v { $(<$core>::$variant => Self::$variant,)+ }
            }
        }

        impl From<$name> for $core {
            fn from(v: $name) -> Self {
                match v { $($name::$variant => Self::$variant,)+ }
            }
        }
    };
}
pub(crate) use mirror_enum;

/// `From` both ways between a UniFFI record and the sync-core struct it
/// mirrors field for field, under the same names.
macro_rules! mirror_fields {
    ($name:ident = $core:path { $($field:ident),+ $(,)? }) => {
        impl From<$core> for $name {
            fn from(v: $core) -> Self {
                Self { $($field: v.$field,)+ }
            }
        }

        impl From<$name> for $core {
            fn from(v: $name) -> Self {
                Self { $($field: v.$field,)+ }
            }
        }
    };
}
pub(crate) use mirror_fields;

/// A tombstone's fields, flattened into the record.
pub(crate) fn tombstone(
    t: Option<&sync_core::records::Tombstone>,
) -> (Option<i64>, Option<String>) {
    t.map_or((None, None), |t| (Some(t.at.millis()), Some(t.by.clone())))
}
