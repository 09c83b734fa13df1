//! Sentence segmentation of Arabic and English news text into byte ranges of
//! the text given, so callers keep offsets into the original characters.
//!
//! A hand-written scanner rather than UAX#29: UAX#29 breaks after Arabic
//! one-letter abbreviations ("د. محمد") and never splits Arabic run-on
//! sentences, which news text is full of.

use std::ops::Range;

use crate::normalize::{is_arabic_mark, normalize_for_matching};

/// Options for [`segment`].
#[derive(Debug, Clone)]
pub struct SegmentOptions {
    /// A sentence longer than this many characters is split at a clause boundary (run-on Arabic).
    pub max_chars: usize,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        Self { max_chars: 320 }
    }
}

/// Splits `text` into sentences: byte ranges into `text`, in order, non-overlapping,
/// each trimmed of surrounding whitespace, non-empty, and starting/ending on char boundaries.
pub fn segment(text: &str, options: &SegmentOptions) -> Vec<Range<usize>> {
    segment_capped(text, options, LineBreaks::End, usize::MAX).0
}

/// What a line break inside the text means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineBreaks {
    /// A line break ends a sentence (a line is a block of its own).
    End,
    /// A line break is a space: the text is a hard-wrapped paragraph.
    Space,
}

/// [`segment`] (with line breaks as `breaks` says), stopping once `limit` sentences are found: returns them
/// (the same as the first `limit` of the whole text's sentences) and
/// whether any text is left after them. The scan stops at the sentence
/// that reaches the limit, so a long text costs only what its first
/// `limit` sentences need.
pub(crate) fn segment_capped(
    text: &str,
    options: &SegmentOptions,
    breaks: LineBreaks,
    limit: usize,
) -> (Vec<Range<usize>>, bool) {
    let mut out = Vec::new();
    if limit == 0 {
        return (out, !text.trim().is_empty());
    }
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() && out.len() < limit {
        let (pos, c) = chars[i];
        if breaks == LineBreaks::End && is_line_break(c) {
            push_sentence(text, start..pos, options.max_chars, limit, &mut out);
            start = pos + c.len_utf8();
            i += 1;
        } else if is_terminal(c) {
            let run_end = skip_while(&chars, i, is_terminal);
            let after = skip_while(&chars, run_end, is_closer);
            if ends_sentence(text, &chars, i, run_end, after, start) {
                let cut = byte_at(text, &chars, after);
                push_sentence(text, start..cut, options.max_chars, limit, &mut out);
                start = cut;
            }
            i = after;
        } else {
            i += 1;
        }
    }
    if out.len() < limit {
        push_sentence(text, start..text.len(), options.max_chars, limit, &mut out);
    }
    let end = out.last().map_or(0, |r| r.end);
    (out, !text[end..].trim().is_empty())
}

/// How an entry of [`ABBREVIATIONS`] behaves before whitespace.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Abbrev {
    /// Never ends a sentence ("Dr. Smith").
    Never,
    /// Ends one like an ordinary word, i.e. unless a lowercase word follows
    /// ("etc. The talks" ends, "etc. and" does not).
    MayEnd,
}

/// Latin abbreviations, written without their final dot. Arabic needs no
/// entries: its abbreviations are single letters ("د." "م." "ق.م"), handled
/// by rule in [`abbreviation`].
const ABBREVIATIONS: &[(&str, Abbrev)] = &[
    ("Mr", Abbrev::Never),
    ("Mrs", Abbrev::Never),
    ("Ms", Abbrev::Never),
    ("Dr", Abbrev::Never),
    ("Prof", Abbrev::Never),
    ("Gen", Abbrev::Never),
    ("Col", Abbrev::Never),
    ("Lt", Abbrev::Never),
    ("Maj", Abbrev::Never),
    ("Sgt", Abbrev::Never),
    ("Capt", Abbrev::Never),
    ("Adm", Abbrev::Never),
    ("Brig", Abbrev::Never),
    ("Rep", Abbrev::Never),
    ("Sen", Abbrev::Never),
    ("Gov", Abbrev::Never),
    ("Pres", Abbrev::Never),
    ("St", Abbrev::Never),
    ("Mt", Abbrev::Never),
    ("Jr", Abbrev::Never),
    ("Sr", Abbrev::Never),
    ("Inc", Abbrev::Never),
    ("Ltd", Abbrev::Never),
    ("Co", Abbrev::Never),
    ("Corp", Abbrev::Never),
    ("Dept", Abbrev::Never),
    ("vs", Abbrev::Never),
    ("e.g", Abbrev::Never),
    ("i.e", Abbrev::Never),
    ("cf", Abbrev::Never),
    ("U.S", Abbrev::Never),
    ("U.K", Abbrev::Never),
    ("U.N", Abbrev::Never),
    ("No", Abbrev::Never),
    ("Jan", Abbrev::Never),
    ("Feb", Abbrev::Never),
    ("Apr", Abbrev::Never),
    ("Aug", Abbrev::Never),
    ("Sep", Abbrev::Never),
    ("Sept", Abbrev::Never),
    ("Oct", Abbrev::Never),
    ("Nov", Abbrev::Never),
    ("Dec", Abbrev::Never),
    ("etc", Abbrev::MayEnd),
    ("a.m", Abbrev::MayEnd),
    ("p.m", Abbrev::MayEnd),
    ("Ph.D", Abbrev::MayEnd),
];

/// Words of the form "و" + reporting verb (masculine and feminine). A run-on
/// Arabic sentence is split before them: each usually opens a new statement.
/// Compared through [`normalize_for_matching`], so hamza and harakat
/// spellings vary freely.
const REPORTING_VERBS: &[&str] = &[
    "وأضاف",
    "وأضافت",
    "وأشار",
    "وأشارت",
    "وتابع",
    "وتابعت",
    "وقال",
    "وقالت",
    "وأكد",
    "وأكدت",
    "وأوضح",
    "وأوضحت",
    "ولفت",
    "ولفتت",
    "وبين",
    "وبينت",
    "وذكر",
    "وذكرت",
    "وأعلن",
    "وأعلنت",
    "وشدد",
    "وشددت",
    "وأفاد",
    "وأفادت",
    "وكشف",
    "وكشفت",
    "وحذر",
    "وحذرت",
    "وأردف",
    "وأردفت",
];

/// Pieces of a split run-on sentence should be at least this long, so a
/// clause is not cut into fragments useless for summarising.
const MIN_PIECE_CHARS: usize = 40;

fn is_line_break(c: char) -> bool {
    // U+000B, U+000C and NEL too: UAX#29 treats them as paragraph separators.
    matches!(
        c,
        '\n' | '\r' | '\u{000B}' | '\u{000C}' | '\u{0085}' | '\u{2028}' | '\u{2029}'
    )
}

fn is_terminal(c: char) -> bool {
    matches!(
        c,
        '.' | '?'
            | '!'
            | '…'
            | '\u{061F}' // ؟
            | '\u{061B}' // ؛
            | '\u{06D4}' // ۔
            | '‼'
            | '⁇'
            | '⁈'
            | '⁉'
    )
}

/// Terminals never seen inside URLs or numbers, so they may end a sentence
/// even when the writer left out the space after them ("لماذا؟قال").
fn is_arabic_terminal(c: char) -> bool {
    matches!(c, '\u{061F}' | '\u{061B}' | '\u{06D4}')
}

fn is_closer(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | '”' | '’' | '“' | '‘' | '»' | '›' | ')' | ']' | '}'
    )
}

fn is_opener(c: char) -> bool {
    matches!(c, '"' | '\'' | '“' | '‘' | '«' | '‹' | '(' | '[' | '{')
}

fn is_arabic_letter(c: char) -> bool {
    matches!(
        c,
        '\u{0600}'..='\u{06FF}'
            | '\u{0750}'..='\u{077F}'
            | '\u{08A0}'..='\u{08FF}'
            | '\u{FB50}'..='\u{FDFF}'
            | '\u{FE70}'..='\u{FEFF}'
    ) && c.is_alphabetic()
}

/// Index of the first char at or after `from` that does not satisfy `pred`.
fn skip_while(chars: &[(usize, char)], from: usize, pred: fn(char) -> bool) -> usize {
    chars[from..]
        .iter()
        .position(|&(_, c)| !pred(c))
        .map_or(chars.len(), |n| from + n)
}

/// Byte offset of char number `idx`, or the end of `text` past the last char.
fn byte_at(text: &str, chars: &[(usize, char)], idx: usize) -> usize {
    chars.get(idx).map_or(text.len(), |&(pos, _)| pos)
}

/// Decides whether the terminal run `chars[run..run_end]`, followed by
/// closing quotes/brackets up to `after`, ends the sentence that began at
/// byte `sentence_start`.
fn ends_sentence(
    text: &str,
    chars: &[(usize, char)],
    run: usize,
    run_end: usize,
    after: usize,
    sentence_start: usize,
) -> bool {
    let terminals = || chars[run..run_end].iter().map(|&(_, c)| c);
    // "(...)" marks words left out of a quotation, not an ending.
    let bracketed = run > 0
        && matches!(chars[run - 1].1, '(' | '[')
        && matches!(chars.get(run_end), Some((_, ')' | ']')));
    if bracketed {
        return false;
    }
    let Some(&(_, next)) = chars.get(after) else {
        return true;
    };
    if !next.is_whitespace() {
        // "2.5", "example.com", "v1.2", "?id=3": no space, no boundary. Only
        // Arabic question marks and semicolons glued to an Arabic word split,
        // and a single dot between Arabic words (".وقال", "”.وجدد"), which
        // scraped pages are full of, unless the word before is a one-letter
        // abbreviation ("د.محمد").
        if !is_arabic_letter(next) {
            return false;
        }
        if terminals().any(is_arabic_terminal) && terminals().all(|c| c != '.' && c != '…') {
            return true;
        }
        return run_end - run == 1 && chars[run].1 == '.' && arabic_word_before(chars, run) >= 2;
    }
    if !terminals().all(|c| c == '.' || c == '…') {
        return true;
    }
    // After a dot or an ellipsis a lowercase word continues the sentence
    // ("approx. five", "and then... nothing"). Arabic has no case, so this
    // never holds back an Arabic split.
    let next_word = chars[after..]
        .iter()
        .map(|&(_, c)| c)
        .find(|&c| !c.is_whitespace() && !is_opener(c));
    if next_word.is_some_and(char::is_lowercase) {
        return false;
    }
    if run_end - run > 1 || after > run_end || chars[run].1 != '.' {
        return true;
    }
    let token_start = chars[..run]
        .iter()
        .rposition(|&(_, c)| !(c.is_alphanumeric() || c == '.' || is_arabic_mark(c)))
        .map_or(0, |n| n + 1);
    let token = text[chars[token_start].0..chars[run].0].trim_start_matches('.');
    if token.is_empty() {
        return true;
    }
    // "1. " opening a line is a list marker, not a one-word sentence.
    let list_marker = token.chars().count() <= 2
        && token.chars().all(|c| c.is_numeric())
        && text[sentence_start..chars[token_start].0].trim().is_empty();
    !list_marker && abbreviation(token) != Some(Abbrev::Never)
}

/// Number of Arabic letters in the word just before char `idx`, skipping
/// closing quotes and brackets.
fn arabic_word_before(chars: &[(usize, char)], idx: usize) -> usize {
    chars[..idx]
        .iter()
        .rev()
        .skip_while(|&&(_, c)| is_closer(c))
        .take_while(|&&(_, c)| is_arabic_letter(c) || is_arabic_mark(c))
        .filter(|&&(_, c)| is_arabic_letter(c))
        .count()
}

/// Classifies the word before a dot: a table entry, or dotted single letters
/// ("U.S", "ق.م"), Arabic one-letter abbreviations ("د", "م") and initials
/// ("F" in "John F. Kennedy").
fn abbreviation(token: &str) -> Option<Abbrev> {
    if let Some(&(_, kind)) = ABBREVIATIONS.iter().find(|(word, _)| *word == token) {
        return Some(kind);
    }
    let mut parts = 0;
    let mut single = None;
    for part in token.split('.') {
        let mut letters = part.chars().filter(|&c| !is_arabic_mark(c));
        match (letters.next(), letters.next()) {
            (Some(c), None) if c.is_alphabetic() => single = Some(c),
            _ => return None,
        }
        parts += 1;
    }
    match single {
        Some(_) if parts > 1 => Some(Abbrev::Never),
        // "I" is far more often the pronoun than an initial.
        Some(c) if c != 'I' && (c.is_uppercase() || is_arabic_letter(c)) => Some(Abbrev::Never),
        _ => None,
    }
}

/// Trims `range` and, when the rest is not empty, pushes it to `out`, split
/// at clause boundaries if it is longer than `max_chars`; stops once `out`
/// holds `limit` sentences.
fn push_sentence(
    text: &str,
    range: Range<usize>,
    max_chars: usize,
    limit: usize,
    out: &mut Vec<Range<usize>>,
) {
    let Some(range) = trimmed(text, range) else {
        return;
    };
    if text[range.clone()].chars().count() <= max_chars {
        out.push(range);
        return;
    }
    let piece = &text[range.clone()];
    let chars: Vec<(usize, char)> = piece.char_indices().collect();
    let mut from = 0;
    for cut in run_on_cuts(&chars, max_chars, limit.saturating_sub(out.len())) {
        if out.len() >= limit {
            break;
        }
        let end = byte_at(piece, &chars, cut);
        out.extend(trimmed(text, range.start + from..range.start + end));
        from = end;
    }
    if out.len() < limit {
        out.extend(trimmed(text, range.start + from..range.end));
    }
}

/// `range` without leading and trailing whitespace, or `None` if nothing is left.
fn trimmed(text: &str, range: Range<usize>) -> Option<Range<usize>> {
    let s = &text[range.clone()];
    let start = range.start + (s.len() - s.trim_start().len());
    let end = start + s.trim().len();
    (start < end).then_some(start..end)
}

/// Char indices at which to cut an over-long sentence (`chars`): greedily
/// the last clause boundary that keeps the piece within `max_chars` and
/// neither piece tiny; failing that the last whitespace within reach; and
/// failing that the first whitespace at all, so an over-long word stands
/// alone. Never cuts inside a word. Stops once the cuts make `pieces`
/// pieces that are not blank.
fn run_on_cuts(chars: &[(usize, char)], max_chars: usize, pieces: usize) -> Vec<usize> {
    let n = chars.len();
    let verbs: Vec<String> = REPORTING_VERBS
        .iter()
        .map(|v| normalize_for_matching(v))
        .collect();
    let mut clauses = Vec::new();
    let mut spaces = Vec::new();
    for (idx, &(_, c)) in chars.iter().enumerate() {
        if c.is_whitespace() {
            spaces.push(idx);
            continue;
        }
        let next = chars.get(idx + 1).map(|&(_, c)| c);
        let after_clause_mark = match c {
            ',' | ';' => next.is_some_and(char::is_whitespace),
            // The Arabic comma is often typed with no space after it.
            '،' => next.is_some_and(|c| c.is_whitespace() || is_arabic_letter(c)),
            _ => false,
        };
        if after_clause_mark {
            clauses.push(idx + 1);
        }
        if idx > 0 && chars[idx - 1].1.is_whitespace() && starts_reporting_verb(chars, idx, &verbs)
        {
            clauses.push(idx);
        }
    }
    clauses.sort_unstable();
    clauses.dedup();

    let min_len = MIN_PIECE_CHARS.min(max_chars / 2);
    let mut cuts = Vec::new();
    let mut cur = 0;
    let mut made = 0;
    while n - cur > max_chars && made < pieces {
        let reach = cur + max_chars;
        let within = |v: &[usize]| {
            let lo = v.partition_point(|&p| p <= cur);
            let hi = v.partition_point(|&p| p <= reach);
            v[lo..hi].to_vec()
        };
        let beyond = |v: &[usize]| v.get(v.partition_point(|&p| p <= reach)).copied();
        let near_clauses = within(&clauses);
        let pick = near_clauses
            .iter()
            .rev()
            .find(|&&p| p - cur >= min_len && n - p >= min_len)
            .or_else(|| near_clauses.iter().rev().find(|&&p| p - cur >= min_len))
            .copied()
            .or_else(|| within(&spaces).last().copied())
            .or_else(|| match (beyond(&clauses), beyond(&spaces)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            });
        let Some(cut) = pick else { break };
        if chars[cur..cut].iter().any(|&(_, c)| !c.is_whitespace()) {
            made += 1;
        }
        cuts.push(cut);
        cur = cut;
    }
    cuts
}

/// True when the word starting at char `idx` is one of `verbs` (already
/// normalized), ignoring punctuation glued to its end ("وأضاف:").
fn starts_reporting_verb(chars: &[(usize, char)], idx: usize, verbs: &[String]) -> bool {
    if chars[idx].1 != 'و' {
        return false;
    }
    let word: String = chars[idx..]
        .iter()
        .map(|&(_, c)| c)
        .take_while(|c| !c.is_whitespace())
        .filter(|&c| c.is_alphabetic() || is_arabic_mark(c))
        .collect();
    let word = normalize_for_matching(&word);
    verbs.contains(&word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_with(text: &str, max_chars: usize, expected: &[&str]) {
        let ranges = segment(text, &SegmentOptions { max_chars });
        let got: Vec<&str> = ranges.iter().map(|r| &text[r.clone()]).collect();
        assert_eq!(got, expected, "segmenting {text:?}");
    }

    fn check(text: &str, expected: &[&str]) {
        check_with(text, SegmentOptions::default().max_chars, expected);
    }

    #[test]
    fn empty_and_blank() {
        check("", &[]);
        check("   \n\t  \r\n ", &[]);
        check("...", &["..."]);
        check(" كلمة ", &["كلمة"]);
    }

    #[test]
    fn arabic_punctuation() {
        check(
            "وصل الوفد إلى القاهرة. وبدأت المحادثات مساء اليوم.",
            &["وصل الوفد إلى القاهرة.", "وبدأت المحادثات مساء اليوم."],
        );
        check(
            "هل انتهت الأزمة؟ لا أحد يعرف! لكن الأمل باق…  والناس ينتظرون.",
            &[
                "هل انتهت الأزمة؟",
                "لا أحد يعرف!",
                "لكن الأمل باق…",
                "والناس ينتظرون.",
            ],
        );
        check(
            "انتهى الاجتماع؛ ولم يصدر بيان۔ ثم عاد الوزير",
            &["انتهى الاجتماع؛", "ولم يصدر بيان۔", "ثم عاد الوزير"],
        );
        check(
            "حقا؟! لم أصدق... ثم تأكدت!!! نعم",
            &["حقا؟!", "لم أصدق...", "ثم تأكدت!!!", "نعم"],
        );
        check(
            "لماذا تأخر؟قال إنه مشغول.",
            &["لماذا تأخر؟", "قال إنه مشغول."],
        );
    }

    #[test]
    fn english_punctuation() {
        check(
            "The talks ended. Did they agree? Nobody knows! Wait...",
            &[
                "The talks ended.",
                "Did they agree?",
                "Nobody knows!",
                "Wait...",
            ],
        );
        check(
            "He paused... and then left. Really?! Yes.",
            &["He paused... and then left.", "Really?!", "Yes."],
        );
    }

    #[test]
    fn closing_quotes_and_brackets_stay() {
        check(
            "قال: \"سنبقى هنا.\" ثم غادر.",
            &["قال: \"سنبقى هنا.\"", "ثم غادر."],
        );
        check("قال: «سنبقى». ثم غادر.", &["قال: «سنبقى».", "ثم غادر."]);
        check(
            "أضاف: «هل نسينا؟» وسكت. (انتهى.) بعدها",
            &["أضاف: «هل نسينا؟»", "وسكت.", "(انتهى.)", "بعدها"],
        );
        check(
            "She said, “We stay.” Then she left.",
            &["She said, “We stay.”", "Then she left."],
        );
        check("قال إن الحل (...) ممكن.", &["قال إن الحل (...) ممكن."]);
    }

    #[test]
    fn arabic_abbreviations() {
        check(
            "قال د. محمد علي إن الوضع مستقر.",
            &["قال د. محمد علي إن الوضع مستقر."],
        );
        check(
            "أشرف م. خالد على المشروع. وحضر أ. سعيد الافتتاح.",
            &["أشرف م. خالد على المشروع.", "وحضر أ. سعيد الافتتاح."],
        );
        check(
            "راسلونا على ص. ب 120 في المدينة. شكرا.",
            &["راسلونا على ص. ب 120 في المدينة.", "شكرا."],
        );
        check(
            "بنيت المدينة عام 300 ق.م. وازدهرت طويلا.",
            &["بنيت المدينة عام 300 ق.م. وازدهرت طويلا."],
        );
        check(
            "توفي سنة 1250 ه. وقد دفن هنا.",
            &["توفي سنة 1250 ه. وقد دفن هنا."],
        );
        check("قال دُ. سامي كلمته.", &["قال دُ. سامي كلمته."]);
    }

    #[test]
    fn english_abbreviations_and_initials() {
        check(
            "Mr. Smith met Dr. Jones and Gen. Brown in the U.S. capital.",
            &["Mr. Smith met Dr. Jones and Gen. Brown in the U.S. capital."],
        );
        check(
            "Prof. Ali vs. Sen. Reed, e.g. on tax, i.e. policy. Next item.",
            &[
                "Prof. Ali vs. Sen. Reed, e.g. on tax, i.e. policy.",
                "Next item.",
            ],
        );
        check(
            "John F. Kennedy read J. R. R. Tolkien. He liked it.",
            &["John F. Kennedy read J. R. R. Tolkien.", "He liked it."],
        );
        check(
            "Acme Inc. signed on Jan. 5 with No. 10 Downing St. officials.",
            &["Acme Inc. signed on Jan. 5 with No. 10 Downing St. officials."],
        );
        check(
            "They sold fuel, food, etc. The border stayed shut.",
            &["They sold fuel, food, etc.", "The border stayed shut."],
        );
        check(
            "fuel, food, etc. and medicine arrived",
            &["fuel, food, etc. and medicine arrived"],
        );
        check(
            "It ended at 5 p.m. Then rain.",
            &["It ended at 5 p.m.", "Then rain."],
        );
        check(
            "Neither did I. Then we left.",
            &["Neither did I.", "Then we left."],
        );
    }

    #[test]
    fn numbers_dates_times() {
        check(
            "ارتفع المؤشر 2.5 بالمئة في 13.04.2024 عند 10:30 صباحا.",
            &["ارتفع المؤشر 2.5 بالمئة في 13.04.2024 عند 10:30 صباحا."],
        );
        check(
            "Casualties rose to 1,035 and inflation hit 3.14% in v1.2 data.",
            &["Casualties rose to 1,035 and inflation hit 3.14% in v1.2 data."],
        );
        check(
            "بلغ النمو ٢٫٥ و٣.٧ بالمئة.",
            &["بلغ النمو ٢٫٥ و٣.٧ بالمئة."],
        );
        check(
            "Turnout was 52. It rose in 2024. 15 seats changed.",
            &["Turnout was 52.", "It rose in 2024.", "15 seats changed."],
        );
        check(
            "1. Ceasefire first.\n2. Talks next.",
            &["1. Ceasefire first.", "2. Talks next."],
        );
    }

    #[test]
    fn urls_and_emails() {
        check(
            "راجع https://example.com/news?id=5&x=1.2 أو راسل name@example.com للمزيد.",
            &["راجع https://example.com/news?id=5&x=1.2 أو راسل name@example.com للمزيد."],
        );
        check(
            "Visit example.com. Then write to press@news.org. Done",
            &[
                "Visit example.com.",
                "Then write to press@news.org.",
                "Done",
            ],
        );
    }

    #[test]
    fn line_breaks() {
        check(
            "عنوان الخبر\nالنص الأول\r\nالنص الثاني\rالثالث\u{2028}الرابع\u{2029}الخامس",
            &[
                "عنوان الخبر",
                "النص الأول",
                "النص الثاني",
                "الثالث",
                "الرابع",
                "الخامس",
            ],
        );
        check("قال د.\nمحمد", &["قال د.", "محمد"]);
        check("\n\n  سطر  \n\n", &["سطر"]);
    }

    #[test]
    fn run_on_arabic_is_split_at_clauses() {
        let text = "أعلنت وزارة الصحة صباح اليوم عن حملة واسعة للتطعيم في المحافظات الجنوبية، \
                    وتستهدف الحملة الأطفال دون سن الخامسة في القرى البعيدة عن المراكز الطبية، \
                    وأضاف المتحدث باسم الوزارة أن الفرق الميدانية بدأت عملها منذ الفجر \
                    وأكد أن اللقاحات متوفرة بكميات كافية لجميع المناطق المستهدفة";
        check_with(
            text,
            80,
            &[
                "أعلنت وزارة الصحة صباح اليوم عن حملة واسعة للتطعيم في المحافظات الجنوبية،",
                "وتستهدف الحملة الأطفال دون سن الخامسة في القرى البعيدة عن المراكز الطبية،",
                "وأضاف المتحدث باسم الوزارة أن الفرق الميدانية بدأت عملها منذ الفجر",
                "وأكد أن اللقاحات متوفرة بكميات كافية لجميع المناطق المستهدفة",
            ],
        );
        // The default limit leaves the same sentence whole.
        assert_eq!(segment(text, &SegmentOptions::default()).len(), 1);
    }

    #[test]
    fn run_on_without_clauses_splits_at_whitespace() {
        let text = "كلمة ".repeat(40);
        let ranges = segment(&text, &SegmentOptions { max_chars: 50 });
        assert!(ranges.len() > 1);
        for r in &ranges {
            assert!(text[r.clone()].chars().count() <= 50);
            assert!(text[r.clone()].split(' ').all(|w| w == "كلمة"));
        }
    }

    #[test]
    fn long_token_is_never_split() {
        let token = "ب".repeat(500);
        check_with(&token, 80, &[token.as_str()]);
        let text = format!("{token} وقال آخر");
        check_with(&text, 80, &[token.as_str(), "وقال آخر"]);
    }

    #[test]
    fn odd_input_does_not_panic() {
        for text in [
            "\u{064E}\u{0651}.",
            "\u{0000}\u{0007}.\u{001B}? ",
            "😀. 🚀! مرحبا👋? ok",
            ".\"\" ) ] ؟؟ »",
            "(...)",
            "(.",
            "a.\u{0301} b",
        ] {
            for max_chars in [0, 1, 5, 320] {
                assert_invariants(text, &segment(text, &SegmentOptions { max_chars }));
            }
        }
    }

    fn assert_invariants(text: &str, ranges: &[Range<usize>]) {
        let mut prev_end = 0;
        for r in ranges {
            assert!(
                r.start >= prev_end,
                "overlap or disorder in {text:?}: {ranges:?}"
            );
            assert!(
                r.start < r.end && r.end <= text.len(),
                "bad range in {text:?}"
            );
            assert!(text.is_char_boundary(r.start) && text.is_char_boundary(r.end));
            let s = &text[r.clone()];
            assert_eq!(s, s.trim(), "untrimmed sentence in {text:?}");
            prev_end = r.end;
        }
        for (pos, c) in text.char_indices() {
            if !c.is_whitespace() {
                assert!(
                    ranges.iter().any(|r| r.contains(&pos)),
                    "{c:?} at {pos} dropped from {text:?}: {ranges:?}"
                );
            }
        }
    }

    #[test]
    fn invariants_hold_on_generated_text() {
        const ALPHABET: &[&str] = &[
            "ا",
            "ب",
            "ت",
            "د",
            "م",
            "و",
            "ي",
            "ة",
            "أ",
            "ق",
            "a",
            "b",
            "Z",
            "F",
            "0",
            "7",
            ".",
            ".",
            ".",
            "؟",
            "!",
            "…",
            "،",
            ",",
            "\"",
            "«",
            "»",
            "”",
            "(",
            ")",
            " ",
            " ",
            " ",
            " ",
            "\n",
            "\r\n",
            "\u{2028}",
            "\u{064E}",
            "😀",
            "وأضاف ",
            "د. ",
        ];
        // xorshift64: deterministic, no external crate.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..500 {
            let len = (next() % 200) as usize;
            let text: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            let max_chars = [0, 3, 20, 80, 320][round % 5];
            assert_invariants(&text, &segment(&text, &SegmentOptions { max_chars }));
        }
    }

    #[test]
    fn a_dot_glued_between_arabic_words_splits_but_not_after_an_abbreviation() {
        let check = |text: &str, expected: &[&str]| {
            let got: Vec<&str> = segment(text, &SegmentOptions::default())
                .into_iter()
                .map(|r| &text[r])
                .collect();
            assert_eq!(got, expected, "{text}");
        };
        check(
            "انتهى الاجتماع.وقال المتحدث إنه مثمر.",
            &["انتهى الاجتماع.", "وقال المتحدث إنه مثمر."],
        );
        check(
            "أكد “الشراكة”.وجدد الالتزام.",
            &["أكد “الشراكة”.", "وجدد الالتزام."],
        );
        check(
            "قال د.محمد إن الوضع مستقر.",
            &["قال د.محمد إن الوضع مستقر."],
        );
        check("الرقم 2.5 مليون.", &["الرقم 2.5 مليون."]);
    }
}
