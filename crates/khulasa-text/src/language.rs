//! Language of the main story, from whatlang, as an ISO 639-1 code.

use serde::Serialize;

/// A detected language.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Language {
    /// ISO 639-1 code, e.g. `ar`, `en`.
    pub code: String,
    /// Detector confidence in [0, 1].
    pub confidence: f64,
}

/// Bytes of the story the detector reads: the first 16 KB tell a language
/// as well as the whole, and whatlang's cost grows with what it is given.
const SAMPLE_BYTES: usize = 16 * 1024;

/// Detects the language of a story from its title and body; `None` for text
/// too short or in a language without an ISO 639-1 code.
pub(crate) fn detect(title: &str, body: &str) -> Option<Language> {
    let text = if body.trim().is_empty() { title } else { body };
    let mut end = text.len().min(SAMPLE_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let text = &text[..end];
    let info = whatlang::detect(text)?;
    Some(Language {
        code: iso_639_1(info.lang().code())?.to_string(),
        confidence: (info.confidence() * 1000.0).round() / 1000.0,
    })
}

/// ISO 639-3 (whatlang's codes) to ISO 639-1.
fn iso_639_1(code: &str) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        ("afr", "af"),
        ("aka", "ak"),
        ("amh", "am"),
        ("ara", "ar"),
        ("aze", "az"),
        ("bel", "be"),
        ("ben", "bn"),
        ("bul", "bg"),
        ("cat", "ca"),
        ("ces", "cs"),
        ("cmn", "zh"),
        ("cym", "cy"),
        ("dan", "da"),
        ("deu", "de"),
        ("ell", "el"),
        ("eng", "en"),
        ("epo", "eo"),
        ("est", "et"),
        ("fin", "fi"),
        ("fra", "fr"),
        ("guj", "gu"),
        ("heb", "he"),
        ("hin", "hi"),
        ("hrv", "hr"),
        ("hun", "hu"),
        ("hye", "hy"),
        ("ind", "id"),
        ("ita", "it"),
        ("jav", "jv"),
        ("jpn", "ja"),
        ("kan", "kn"),
        ("kat", "ka"),
        ("khm", "km"),
        ("kor", "ko"),
        ("lat", "la"),
        ("lav", "lv"),
        ("lit", "lt"),
        ("mal", "ml"),
        ("mar", "mr"),
        ("mkd", "mk"),
        ("mya", "my"),
        ("nep", "ne"),
        ("nld", "nl"),
        ("nob", "nb"),
        ("ori", "or"),
        ("pan", "pa"),
        ("pes", "fa"),
        ("pol", "pl"),
        ("por", "pt"),
        ("ron", "ro"),
        ("rus", "ru"),
        ("sin", "si"),
        ("slk", "sk"),
        ("slv", "sl"),
        ("sna", "sn"),
        ("spa", "es"),
        ("srp", "sr"),
        ("swe", "sv"),
        ("tam", "ta"),
        ("tel", "te"),
        ("tgl", "tl"),
        ("tha", "th"),
        ("tuk", "tk"),
        ("tur", "tr"),
        ("ukr", "uk"),
        ("urd", "ur"),
        ("uzb", "uz"),
        ("vie", "vi"),
        ("yid", "yi"),
        ("zul", "zu"),
    ];
    TABLE
        .iter()
        .find(|(three, _)| *three == code)
        .map(|(_, two)| *two)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arabic_and_english_stories() {
        let ar = detect("", "أعلنت وزارة الدفاع العراقية اليوم عن بدء مرحلة جديدة من التعاون مع التحالف الدولي في مجال التدريب.").unwrap();
        assert_eq!(ar.code, "ar");
        assert!(ar.confidence > 0.5);
        let en = detect("", "The defence ministry announced a new phase of cooperation with the coalition on training.").unwrap();
        assert_eq!(en.code, "en");
    }

    #[test]
    fn every_whatlang_language_maps() {
        for lang in whatlang::Lang::all() {
            assert!(iso_639_1(lang.code()).is_some(), "{}", lang.code());
        }
    }
}
