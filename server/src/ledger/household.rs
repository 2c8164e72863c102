//! The household a visit counts towards: a stable key the server derives
//! from the visited subject, so statistics count distinct households, not
//! visits.
//!
//! The phones write no household id of their own (sync-core's `Subject` is
//! kind, name and an optional address), and a field added now would be
//! missing from every visit already recorded. So the key is derived here
//! from what every visit has: the subject's kind, name and address, each
//! normalised so that the spellings two cadres, or one cadre on two days,
//! type for the same household give the same key: full-width letters and
//! digits become half-width, Latin letters lower case, and whitespace and
//! punctuation (including the Chinese `，。、·-（）#`) are dropped. A house
//! number written `3号` and `３ 号` is one household; two 王秀英 at different
//! addresses are two. A household visited without an address is keyed by
//! its name alone (within the cadre's own counting, see the statistics).

/// The normalised key of a visit's subject: `kind|name|address`.
pub fn household_key(subject_kind: &str, name: &str, address: Option<&str>) -> String {
    format!(
        "{}|{}|{}",
        subject_kind,
        normalise(name),
        address.map(normalise).unwrap_or_default()
    )
}

fn normalise(text: &str) -> String {
    text.chars()
        .filter_map(|c| {
            // Full-width ASCII (U+FF01..U+FF5E) to half-width.
            let c = match c {
                '\u{FF01}'..='\u{FF5E}' => {
                    char::from_u32(u32::from(c) - 0xFF01 + 0x21).unwrap_or(c)
                }
                '\u{3000}' => ' ',
                c => c,
            };
            if c.is_whitespace() || c.is_ascii_punctuation() || is_cjk_punctuation(c) {
                None
            } else {
                Some(c.to_ascii_lowercase())
            }
        })
        .collect()
}

/// CJK symbols and punctuation (、。「」…), the middle dot and dashes.
fn is_cjk_punctuation(c: char) -> bool {
    matches!(c, '\u{3001}'..='\u{303F}' | '\u{00B7}' | '\u{2010}'..='\u{2027}')
}

#[cfg(test)]
mod tests {
    use super::household_key;

    #[test]
    fn spellings_of_one_household_agree() {
        let a = household_key("household", "王秀英", Some("柳树村三组 3号"));
        assert_eq!(
            a,
            household_key("household", " 王秀英", Some("柳树村三组３号"))
        );
        assert_eq!(
            a,
            household_key("household", "王秀英", Some("柳树村三组、3号。"))
        );
        assert_ne!(
            a,
            household_key("household", "王秀英", Some("柳树村三组4号"))
        );
        assert_ne!(a, household_key("household", "王秀", Some("柳树村三组3号")));
        assert_ne!(
            a,
            household_key("enterprise", "王秀英", Some("柳树村三组3号"))
        );
        assert_eq!(
            household_key("enterprise", "ＡＢＣ 农业", None),
            household_key("enterprise", "abc农业", None)
        );
    }
}
