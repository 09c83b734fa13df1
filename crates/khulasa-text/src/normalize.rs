//! A *matching view* of Arabic text: folds spelling variants so that lookups
//! and comparisons ignore them. Never used for text returned to the client.

/// Returns the matching view of `text`.
///
/// Folds alef variants (أ إ آ ٱ) to ا, ى to ي, ة to ه, the Persian/Urdu
/// look-alikes ی and ک to ي and ك, Arabic-Indic and Eastern Arabic-Indic
/// digits to ASCII digits, and cased letters (Latin) to lowercase. Removes
/// tatweel, harakat (U+064B–U+065F, U+0670) and Quranic marks
/// (U+06D6–U+06ED). Whitespace is kept as it is.
pub fn normalize_for_matching(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_arabic_mark(c) || c == TATWEEL {
            continue;
        }
        match c {
            // Alef with hamza above/below, madda, wasla, and the wavy-hamza
            // forms: writers use them interchangeably with bare alef.
            'أ' | 'إ' | 'آ' | 'ٱ' | '\u{0672}' | '\u{0673}' => out.push('ا'),
            // Alef maqsura and Farsi yeh are commonly typed for yeh.
            'ى' | '\u{06CC}' => out.push('ي'),
            'ة' => out.push('ه'),
            // Keheh (Persian kaf) is what some keyboards produce for kaf.
            '\u{06A9}' => out.push('ك'),
            '\u{0660}'..='\u{0669}' => out.push(ascii_digit(c, '\u{0660}')),
            '\u{06F0}'..='\u{06F9}' => out.push(ascii_digit(c, '\u{06F0}')),
            _ if c.is_uppercase() => out.extend(c.to_lowercase()),
            _ => out.push(c),
        }
    }
    out
}

/// True when `a` and `b` have the same matching view once whitespace runs
/// are collapsed to one space and the ends trimmed.
pub fn normalized_eq(a: &str, b: &str) -> bool {
    normalize_for_matching(a)
        .split_whitespace()
        .eq(normalize_for_matching(b).split_whitespace())
}

/// Arabic tatweel (kashida): a stretching character with no meaning.
const TATWEEL: char = '\u{0640}';

/// True for Arabic harakat, superscript alef and Quranic annotation marks:
/// characters that decorate a letter rather than spell a word.
pub(crate) fn is_arabic_mark(c: char) -> bool {
    matches!(c, '\u{064B}'..='\u{065F}' | '\u{0670}' | '\u{06D6}'..='\u{06ED}')
}

/// Maps a digit of a ten-digit block starting at `zero` to its ASCII digit.
fn ascii_digit(c: char, zero: char) -> char {
    let value = u32::from(c) - u32::from(zero);
    char::from_digit(value, 10).unwrap_or(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(
            normalize_for_matching(input),
            expected,
            "normalizing {input:?}"
        );
    }

    #[test]
    fn folds_letter_variants() {
        check("أحمد", "احمد");
        check("إسلام", "اسلام");
        check("آمنة", "امنه");
        check("ٱلرحمن", "الرحمن");
        check("مستشفى", "مستشفي");
        check("مدرسة", "مدرسه");
        check("کتاب", "كتاب");
        check("ایران", "ايران");
        check("على المدى", "علي المدي");
    }

    #[test]
    fn removes_tatweel_and_marks() {
        check("الـــوزارة", "الوزاره");
        check("مُحَمَّدٌ", "محمد");
        check("هٰذا", "هذا");
        check("قَالَۖ", "قال");
        // Decomposed hamza and madda are marks too, so they fold like the
        // precomposed letters.
        check("\u{0627}\u{0654}\u{0645}\u{0646}", "امن");
        check("\u{0627}\u{0653}", "ا");
    }

    #[test]
    fn folds_digits_and_case() {
        check("٢٠٢٤", "2024");
        check("۱۴۰۳", "1403");
        check("عام ١٤٤٥ هـ", "عام 1445 ه");
        check("NATO وUN", "nato وun");
        check("Ça VA", "ça va");
    }

    #[test]
    fn keeps_other_text() {
        check("", "");
        check("  \n\t", "  \n\t");
        check("حرب غزة 2024!", "حرب غزه 2024!");
        check("😀 ok", "😀 ok");
    }

    #[test]
    fn compares_matching_views() {
        assert!(normalized_eq("  وزارةُ   الدفاع ", "وزاره الدفاع"));
        assert!(normalized_eq("إعلان\nرسمي", "اعلان رسمي"));
        assert!(normalized_eq("UN", "un"));
        assert!(normalized_eq("", "   "));
        assert!(!normalized_eq("وزارة الدفاع", "وزارةالدفاع"));
        assert!(!normalized_eq("قال", "قالت"));
    }
}
