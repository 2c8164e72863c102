//! Residents' personal data in answers and exports: who sees phone and ID
//! numbers whole, and the masks everyone else sees.
//!
//! The rule (the same for every JSON answer and every export):
//!
//! - A resident's phone and ID numbers are shown whole only to the people
//!   who must reach the resident about that record: the cadre whose
//!   document holds it (who recorded it), and, for a petition, the person
//!   currently responsible for it (first visitor, or whoever it was
//!   reassigned or escalated to).
//! - Everyone else, supervisors and admins included, sees them masked:
//!   a phone as `138****5678`, an ID number as `110***********1234`. They
//!   supervise, count and rank; they do not call residents, and an export
//!   they hand on carries no numbers whole.
//! - Masking covers the phone field and any phone or ID number written into
//!   free text (a matter, an address, feedback, an event's note), which is
//!   where cadres type them when the form has no field for it.
//!
//! Raw documents never leave through the API: they sync only to their
//! owner's devices (`sync/access.rs`), so this module is the one place that
//! decides what a reader of the ledger sees.

use crate::auth::AuthUser;

/// Whose view an answer or an export is made for.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The reader's username.
    pub username: String,
}

impl Viewer {
    /// The caller's view.
    pub fn of(caller: &AuthUser) -> Self {
        Viewer {
            username: caller.username.clone(),
        }
    }

    /// Whether this reader sees the personal data of a record in `owner`'s
    /// document, for which `responsible` is responsible (`None` for records
    /// without a responsible person: visits, service cards) whole.
    pub fn sees_whole(&self, owner: &str, responsible: Option<&str>) -> bool {
        self.username == owner || responsible == Some(self.username.as_str())
    }

    /// `phone` as this reader may see it.
    pub fn phone(&self, phone: Option<&str>, whole: bool) -> Option<String> {
        phone.map(|p| if whole { p.to_owned() } else { mask_phone(p) })
    }

    /// Free text as this reader may see it.
    pub fn text(&self, text: &str, whole: bool) -> String {
        if whole {
            text.to_owned()
        } else {
            mask_text(text)
        }
    }
}

/// Masks a phone number: `13812345678` → `138****5678`; anything shorter
/// than 8 characters becomes `****`.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 8 {
        return "****".to_owned();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// Masks an 18- or 15-character ID number: the first 3 and last 4
/// characters stay, the rest become `*`.
pub fn mask_id_number(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() < 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

/// Masks every phone number (11 digits starting with 1) and ID number (15
/// digits, or 17 digits and a digit or X) in free text; other digits stay.
pub fn mask_text(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        // An ID number's check character may be X.
        if i - start == 17 && i < chars.len() && matches!(chars[i], 'X' | 'x') {
            i += 1;
        }
        let run: String = chars[start..i].iter().collect();
        match run.len() {
            11 if run.starts_with('1') => out.push_str(&mask_phone(&run)),
            15 | 18 => out.push_str(&mask_id_number(&run)),
            _ => out.push_str(&run),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_and_id_numbers_are_masked() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("123"), "****");
        assert_eq!(mask_id_number("110105199001011234"), "110***********1234");
        assert_eq!(
            mask_text("王秀英，电话13812345678，身份证11010519900101123X，门牌38号。"),
            "王秀英，电话138****5678，身份证110***********123X，门牌38号。"
        );
        assert_eq!(mask_text("2026-06-28 办结"), "2026-06-28 办结");
        assert_eq!(mask_text("23812345678"), "23812345678");
    }

    #[test]
    fn owner_and_responsible_see_whole() {
        let v = Viewer {
            username: "cadre01".into(),
        };
        assert!(v.sees_whole("cadre01", Some("cadre02")));
        assert!(v.sees_whole("cadre02", Some("cadre01")));
        assert!(!v.sees_whole("cadre02", Some("cadre03")));
        assert!(!v.sees_whole("cadre02", None));
        assert_eq!(
            v.phone(Some("13812345678"), false).as_deref(),
            Some("138****5678")
        );
        assert_eq!(
            v.phone(Some("13812345678"), true).as_deref(),
            Some("13812345678")
        );
    }
}
