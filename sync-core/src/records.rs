//! The typed records kept in documents: visits, petitions (with their events)
//! and service cards. These are plain data; `document` maps them onto automerge.

pub mod petition;
pub mod service_card;
pub mod visit;

/// Declares an enum spelled as a fixed lowercase string wherever it is kept
/// (documents, database columns, JSON, the command line), with its Chinese
/// label for display: `as_str`, `label_zh`, `ALL`, `FromStr`, `Display`,
/// serde (the crate invoking it needs `serde`), and, with the `sqlx` feature,
/// the database's text type.
///
/// ```
/// sync_core::text_enum! {
///     /// Whether a light is on.
///     Light, "light" {
///         /// 开
///         On = "on", "开";
///         /// 关
///         Off = "off", "关";
///     }
/// }
/// assert_eq!("off".parse::<Light>().unwrap().label_zh(), "关");
/// ```
#[macro_export]
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $field:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal, $zh:literal;)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The string stored in documents and used in the API.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }

            /// The Chinese label shown to users.
            pub fn label_zh(self) -> &'static str {
                match self { $($name::$variant => $zh,)+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::ValidationError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::ValidationError::UnknownValue { field: $field, value: s.to_owned() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        $crate::__text_enum_sqlx!($name);
    };
}

/// With the `sqlx` feature: a [`text_enum!`] is a text column's value, bound
/// and read as its `as_str` spelling (a spelling it does not know fails the
/// read). Defined here, by sync-core's features, so that the enums of a
/// crate without the feature get the same impls.
#[cfg(feature = "sqlx")]
#[doc(hidden)]
#[macro_export]
macro_rules! __text_enum_sqlx {
    ($name:ident) => {
        impl<DB: $crate::__sqlx::Database> $crate::__sqlx::Type<DB> for $name
        where
            str: $crate::__sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as $crate::__sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as $crate::__sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: $crate::__sqlx::Database> $crate::__sqlx::Encode<'q, DB> for $name
        where
            &'static str: $crate::__sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as $crate::__sqlx::Database>::ArgumentBuffer,
            ) -> Result<$crate::__sqlx::encode::IsNull, $crate::__sqlx::error::BoxDynError> {
                $crate::__sqlx::Encode::<DB>::encode(self.as_str(), buf)
            }
        }

        impl<'r, DB: $crate::__sqlx::Database> $crate::__sqlx::Decode<'r, DB> for $name
        where
            &'r str: $crate::__sqlx::Decode<'r, DB>,
        {
            fn decode(
                value: <DB as $crate::__sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, $crate::__sqlx::error::BoxDynError> {
                let text = <&'r str as $crate::__sqlx::Decode<'r, DB>>::decode(value)?;
                Ok(text.parse()?)
            }
        }
    };
}

/// Without the `sqlx` feature, nothing.
#[cfg(not(feature = "sqlx"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __text_enum_sqlx {
    ($name:ident) => {};
}

use crate::Timestamp;

/// A record's tombstone: records are never removed from a document, only
/// marked deleted, so a delete on one device and an edit on another both
/// survive a merge and the ledger can show what happened.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tombstone {
    /// When the record was deleted.
    pub at: Timestamp,
    /// Who deleted it.
    pub by: String,
}
