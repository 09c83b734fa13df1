//! The compact SentencePiece tokenizer against Hugging Face's `tokenizers`
//! on the default model's `tokenizer.json`: the same ids and the same byte
//! offsets for every text, from our fixtures to deliberately awkward Unicode.

use crate::common;

use khulasa_tokenize::{Backend, Tokenizer};

fn tokenizers() -> (Tokenizer, Tokenizer) {
    let path = common::model_dir().join("tokenizer.json");
    let compact = Tokenizer::from_file(&path, Backend::Auto).expect("tokenizer loads");
    let reference = Tokenizer::from_file(&path, Backend::HuggingFace).expect("tokenizer loads");
    assert_eq!(compact.implementation(), "sentencepiece");
    assert_eq!(reference.implementation(), "huggingface");
    (compact, reference)
}

fn fixture_texts() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut texts = Vec::new();
    let devset = std::fs::read_to_string(root.join("devset/devset.jsonl")).unwrap();
    for line in devset.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for key in ["title", "text"] {
            if let Some(s) = v.get(key).and_then(|s| s.as_str()) {
                texts.push(s.to_string());
            }
        }
    }
    for dir in ["pages", "html"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            texts.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
        }
    }
    texts
}

/// Strings chosen to hit the normalizer's and the lattice's corners.
const AWKWARD: &[&str] = &[
    "",
    " ",
    "   ",
    "\n\n\t",
    "a",
    "  leading and   inner   spaces  ",
    "ﻻ ﻷ ﷲ ﷺ ﴿الآية﴾",         // Arabic presentation forms and ligatures
    "مُحَمَّدٌ وَالْعِرَاقُ",           // harakat
    "العـــــراق والولايــات", // tatweel
    "٢٠٢٤ ۱۴۰۳ 2024 ¹²³ ½",   // Arabic-Indic, Persian and other digits
    "ＦＵＬＬ ｗｉｄｔｈ　ideographic space",
    "ﬁ ﬂ ™ № ℃ Ⅻ ㎏",
    "e\u{301} o\u{308}\u{304} a\u{20DD}", // combining marks
    "\u{200B}zero width at start",
    "x\u{200B}\u{200C}\u{200D}\u{2060}y",
    "\u{FEFF}\u{00AD}soft\u{00AD}hyphen",
    "\u{1E}\u{1F}control\u{7}chars\u{0}",
    "™\u{1E}g",
    "👩‍👩‍👧‍👦 🇮🇶🇺🇸 👍🏽 ❤️",
    "עברית فارسی: گزارش ژاپن پژوهش اردو: ہے",
    "中文 日本語のテキスト 한국어 텍스트",
    "Ελληνικά Русский текст ქართული",
    "<s>literal</s> specials <mask> and <unk> and <pad>",
    "<s><s></s>",
    "http://example.invalid/path?q=الأمن&x=1#frag",
    "«اقتباس» “quotes” ‘single’ — – … •",
    "\u{0660}\u{06F0}\u{0966}",
    "𝐀𝐁𝐂 𝔄𝔅 𝟘𝟙",
    "\u{E000}\u{10FFFD} private use",
    "Ǆ ǅ ǆ ß ẞ İ ı",
];

fn assert_same(compact: &Tokenizer, reference: &Tokenizer, text: &str) {
    let a = compact.encode(text).unwrap();
    let b = reference.encode(text).unwrap();
    assert_eq!(a.ids, b.ids, "ids differ for {text:?}");
    assert_eq!(a.offsets, b.offsets, "offsets differ for {text:?}");
}

#[test]
fn same_ids_and_offsets_as_huggingface() {
    let (compact, reference) = tokenizers();
    assert_eq!(compact.special_tokens(), reference.special_tokens());
    let texts = fixture_texts();
    assert!(texts.len() > 50);
    let mut tokens = 0;
    for text in &texts {
        assert_same(&compact, &reference, text);
        tokens += reference.encode(text).unwrap().ids.len();
    }
    assert!(tokens > 20_000, "{tokens} tokens compared");
    for text in AWKWARD {
        assert_same(&compact, &reference, text);
    }
}

/// Random strings over character pools where the normalizer and the unigram
/// lattice do the most: Arabic with marks, compatibility forms, spaces,
/// controls, emoji and rare scripts.
#[test]
fn same_on_random_strings() {
    let (compact, reference) = tokenizers();
    let pools: &[std::ops::RangeInclusive<u32>] = &[
        0x20..=0x7E,
        0x600..=0x6FF,
        0x750..=0x77F,
        0xFB50..=0xFDFF,
        0xFE70..=0xFEFF,
        0x300..=0x36F,
        0x2000..=0x206F,
        0xFF00..=0xFFEF,
        0x1F300..=0x1F6FF,
        0x3040..=0x30FF,
        0x0..=0x1F,
        0x1D400..=0x1D7FF,
        0x2150..=0x218F,
        0x3300..=0x33FF,
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3_000 {
        let len = 1 + (next() % 40) as usize;
        let text: String = (0..len)
            .filter_map(|_| {
                let pool = &pools[(next() % pools.len() as u64) as usize];
                let span = pool.end() - pool.start() + 1;
                let c = char::from_u32(pool.start() + (next() % span as u64) as u32)?;
                // Spaces often, so words stay short and varied.
                Some(if next() % 5 == 0 { ' ' } else { c })
            })
            .collect();
        assert_same(&compact, &reference, &text);
    }
}
