//! What makes a record valid. The phone and the server run the same checks, so
//! they agree on what may be written.

/// Why a record or an edit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// A required field is empty.
    #[error("{field} is required")]
    Required {
        /// The field's name.
        field: &'static str,
    },
    /// A text field is longer than the schema allows.
    #[error("{field} is longer than {max} characters")]
    TooLong {
        /// The field's name.
        field: &'static str,
        /// The limit, in characters.
        max: usize,
    },
    /// A phone number is neither a mainland mobile number nor a landline.
    #[error(
        "{value:?} is not a phone number (expected 11 digits starting with 1, or an area code and number)"
    )]
    InvalidPhone {
        /// What was given.
        value: String,
    },
    /// A category, kind, level or other enumerated value is not one the schema knows.
    #[error("{value:?} is not a valid {field}")]
    UnknownValue {
        /// The field's name.
        field: &'static str,
        /// What was given.
        value: String,
    },
    /// A deadline falls before the day the petition was created.
    #[error("deadline {deadline} is before the petition was created on {created}")]
    DeadlineBeforeCreation {
        /// The deadline given, `YYYY-MM-DD`.
        deadline: String,
        /// The creation date, `YYYY-MM-DD`.
        created: String,
    },
    /// Coordinates outside the valid range.
    #[error("location {lat},{lon} is not a valid coordinate")]
    InvalidLocation {
        /// Latitude given.
        lat: String,
        /// Longitude given.
        lon: String,
    },
    /// A money amount below zero.
    #[error("{field} may not be negative")]
    Negative {
        /// The field's name.
        field: &'static str,
    },
    /// A satisfaction rating outside the scale.
    #[error("satisfaction must be one of satisfied, basically_satisfied, dissatisfied")]
    InvalidSatisfaction,
    /// The event does not apply to the petition in its current state.
    #[error("cannot {event} a petition that is {status}")]
    InvalidTransition {
        /// The event attempted.
        event: &'static str,
        /// The petition's status.
        status: &'static str,
    },
}

/// Longest single-line field (names, places, phone numbers), in characters.
pub const MAX_SHORT: usize = 200;
/// Longest free text (notes, a petition's matter), in characters.
pub const MAX_LONG: usize = 20_000;

pub(crate) fn required(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::Required { field });
    }
    max_len(field, value, MAX_SHORT)
}

pub(crate) fn max_len(field: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.chars().count() > max {
        return Err(ValidationError::TooLong { field, max });
    }
    Ok(())
}

/// Checks a phone number's shape: a mainland mobile number (`1` then ten
/// digits, optionally prefixed `+86`), or a landline (`0`, a 2–3 digit area
/// code, optionally a hyphen, and 7–8 digits). Spaces are ignored.
pub fn check_phone(value: &str) -> Result<(), ValidationError> {
    let compact: String = value.chars().filter(|c| *c != ' ').collect();
    let bad = || ValidationError::InvalidPhone {
        value: value.to_owned(),
    };
    let national = compact
        .strip_prefix("+86")
        .or_else(|| compact.strip_prefix("0086"))
        .unwrap_or(&compact);
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if national.starts_with('1') {
        let second = national.as_bytes().get(1).copied().unwrap_or(b'0');
        if national.len() == 11 && all_digits(national) && (b'3'..=b'9').contains(&second) {
            return Ok(());
        }
        return Err(bad());
    }
    if let Some(rest) = national.strip_prefix('0') {
        let (area, number) = match rest.split_once('-') {
            Some((a, n)) => (a.len(), n),
            // Without a hyphen the split is ambiguous; accept the total length range.
            None => (0, rest),
        };
        let total = rest.len() - usize::from(rest.contains('-'));
        let ok_split = area == 0 || ((2..=3).contains(&area) && (7..=8).contains(&number.len()));
        if ok_split && (9..=11).contains(&total) && all_digits(&rest.replace('-', "")) {
            return Ok(());
        }
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        for ok in [
            "13812345678",
            "+86 138 1234 5678",
            "0571-87654321",
            "010-1234567",
            "057187654321",
        ] {
            assert_eq!(check_phone(ok), Ok(()), "{ok}");
        }
        for bad in [
            "12345",
            "12812345678",
            "1381234567x",
            "",
            "138123456789",
            "0571-12",
            "phone",
        ] {
            assert!(check_phone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn required_fields() {
        assert_eq!(
            required("place", "  "),
            Err(ValidationError::Required { field: "place" })
        );
        assert!(required("place", "李家村").is_ok());
        assert!(matches!(
            required("place", &"村".repeat(MAX_SHORT + 1)),
            Err(ValidationError::TooLong { .. })
        ));
    }
}
