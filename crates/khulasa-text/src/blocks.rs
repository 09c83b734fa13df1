//! Cutting a page into blocks (non-empty lines, trimmed) and measuring the
//! features that tell prose from page furniture: length, terminal
//! punctuation, list markers, stop-word density and cue phrases.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::OnceLock;

use crate::cues::{CUES, Cue, Match, STOP_WORDS};
use crate::normalize::normalize_for_matching;
use crate::wrap;

/// A block of the page with the features classification needs.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    /// Byte range of the block (trimmed) in the page text.
    pub range: Range<usize>,
    /// Matching view: normalised, whitespace collapsed, edge punctuation
    /// and list markers removed.
    pub key: String,
    /// Number of words.
    pub words: usize,
    /// Ends like a sentence (. ! ? ؟ … possibly before a closing quote).
    pub terminal: bool,
    /// Starts with a list marker (•, -, *, 1.) or was indented in the page.
    pub listish: bool,
    /// Starts with a list marker.
    pub bullet: bool,
    /// A short line made of dates, times and a byline ("By X | 13.04.2024, 10:15 GMT").
    pub dateish: bool,
    /// A menu-like line: three or more short items separated by `|`.
    pub menu_row: bool,
    /// Share of words that are function words.
    pub stop_density: f32,
    /// The cue phrase the block starts with, if any, and whether text
    /// follows the cue on the same line (e.g. "read also: <headline>").
    pub cue: Option<(Cue, bool)>,
    /// Hard-wrapped lines rejoined: its line breaks are spaces.
    pub wrapped: bool,
}

impl Block {
    /// Running prose: long enough, and sentence-like.
    pub fn is_prose(&self) -> bool {
        !self.bullet
            && !self.menu_row
            && ((self.words >= 10 && (self.terminal || self.stop_density >= 0.12))
                || (self.words >= 20 && !self.listish))
    }

    /// A headline-like line: a few words, no list marker, not a sentence
    /// ending in a full stop.
    pub fn is_headline(&self) -> bool {
        (3..=30).contains(&self.words) && !self.listish && !self.ends_with_stop()
    }

    fn ends_with_stop(&self) -> bool {
        self.terminal && !self.key.ends_with(['؟', '?', '!'])
    }
}

const BULLETS: &[char] = &[
    '•', '·', '▪', '●', '◦', '■', '►', '▶', '*', '-', '–', '—', '»', '>',
];
const TERMINALS: &[char] = &['.', '!', '?', '؟', '…', '۔'];
const CLOSERS: &[char] = &['"', '\'', '”', '’', '»', ')', ']', '»'];

/// Splits `text` into blocks: one per non-empty line, trimmed, or one per
/// run of hard-wrapped lines ([`crate::wrap`]); a block that opens with a
/// date notice and runs on into prose is split in two.
pub(crate) fn blocks(text: &str) -> Vec<Block> {
    let lines = lines(text);
    let joins = wrap::joins(text, &lines, |i| {
        let raw = &text[lines[i].range.clone()];
        let key = key_of(raw);
        let words = key.split_whitespace().count();
        // Cues that start the line (one found anywhere, "cookie", does not
        // stop a sentence running on); date lines and lone cue words,
        // unless they end a sentence ("... in the summer of\n2014.",
        // "... broadcast\nlive."). A date notice running into the lead may
        // open a run: the joined block is split.
        let ends_sentence = lines[i].terminal;
        match match_cue(&key, words, false) {
            Some((Cue::Date, true)) => wrap::Kind::DateNotice,
            Some((Cue::Related | Cue::ReadAlso, false)) => wrap::Kind::ListHeader,
            Some((_, false)) if ends_sentence => wrap::Kind::Text,
            Some(_) => wrap::Kind::Furniture,
            None if is_menu_row(raw) || (is_dateish(raw, words) && !ends_sentence) => {
                wrap::Kind::Furniture
            }
            None => wrap::Kind::Text,
        }
    });
    let mut out = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        let mut last = i;
        while joins[last] {
            last += 1;
        }
        let range = lines[i].range.start..lines[last].range.end;
        let wrapped = last > i;
        match split_date_notice(text, range.clone()) {
            Some((date, rest)) => {
                out.push(block(text, date, false, wrapped));
                out.push(block(text, rest, false, wrapped));
            }
            None => out.push(block(text, range, lines[i].indented, wrapped)),
        }
        i = last + 1;
    }
    out
}

/// The page's non-blank lines, with what [`wrap`] needs to know of them.
fn lines(text: &str) -> Vec<wrap::Line> {
    let mut out: Vec<wrap::Line> = Vec::new();
    let mut start = 0;
    // Line breaks since the last non-blank line ("\r\n" is one), and
    // whether a paragraph separator was among them.
    let mut breaks = 0;
    let mut paragraph_break = false;
    let mut after_cr = false;
    for line in text.split_inclusive(['\n', '\r', '\u{2028}', '\u{2029}']) {
        let end = start + line.len();
        if let Some(r) = trim_range(text, start..end) {
            let raw = &text[r.clone()];
            out.push(wrap::Line {
                indented: line.starts_with([' ', '\t', '\u{a0}']),
                follows: !out.is_empty() && breaks == 1 && !paragraph_break,
                chars: raw.chars().count(),
                first_word: raw
                    .split_whitespace()
                    .next()
                    .map_or(0, |w| w.chars().count()),
                words: raw.split_whitespace().count(),
                terminal: raw
                    .trim_end_matches(CLOSERS)
                    .trim_end()
                    .ends_with(TERMINALS),
                bullet: starts_with_list_marker(raw),
                starts_with_stop: raw
                    .split_whitespace()
                    .next()
                    .is_some_and(|w| !w.starts_with(char::is_uppercase) && is_stop_word(w)),
                ends_with_stop: raw.split_whitespace().next_back().is_some_and(is_stop_word),
                dateline: opens_with_dateline(raw),
                range: r,
            });
            breaks = 0;
            paragraph_break = false;
        }
        match line.chars().next_back() {
            Some('\n') if after_cr && line == "\n" => {}
            Some('\n' | '\r' | '\u{2028}') => breaks += 1,
            Some('\u{2029}') => paragraph_break = true,
            _ => {}
        }
        after_cr = line.ends_with('\r');
        start = end;
    }
    out
}

/// The range without surrounding whitespace (and invisible format
/// characters), or `None` if nothing is left.
pub(crate) fn trim_range(text: &str, r: Range<usize>) -> Option<Range<usize>> {
    let s = &text[r.clone()];
    let is_blank = |c: char| c.is_whitespace() || is_invisible(c);
    let lead = s.len() - s.trim_start_matches(is_blank).len();
    let trimmed = s.trim_start_matches(is_blank).trim_end_matches(is_blank);
    (!trimmed.is_empty()).then(|| r.start + lead..r.start + lead + trimmed.len())
}

/// True when `s` holds nothing visible: only whitespace and invisible
/// format characters, as between two blocks.
pub(crate) fn is_blank(s: &str) -> bool {
    s.chars().all(|c| c.is_whitespace() || is_invisible(c))
}

fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
        || c.is_control()
}

fn block(text: &str, range: Range<usize>, indented: bool, wrapped: bool) -> Block {
    let raw = &text[range.clone()];
    let bullet = starts_with_list_marker(raw);
    // A wrapped paragraph's indent is the paragraph's, not a list's.
    let listish = (indented && !wrapped) || bullet;
    let key = key_of(raw);
    let words: Vec<&str> = key.split_whitespace().collect();
    let stops = stop_words();
    let n_stop = words.iter().filter(|w| stops.contains(**w)).count();
    let trimmed_end = raw.trim_end_matches(CLOSERS).trim_end();
    let terminal = trimmed_end.ends_with(TERMINALS);
    let cue = match_cue(&key, words.len(), true);
    let menu_row = is_menu_row(raw);
    let dateish = !menu_row && is_dateish(raw, words.len());
    Block {
        bullet,
        dateish,
        menu_row,
        range,
        words: words.len(),
        stop_density: if words.is_empty() {
            0.0
        } else {
            n_stop as f32 / words.len() as f32
        },
        terminal,
        listish,
        cue,
        key,
        wrapped,
    }
}

fn starts_with_list_marker(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if BULLETS.contains(&c) => {
            // "-" or "—" opening a dateline-less sentence is still a marker
            // only when followed by a space.
            matches!(chars.next(), Some(c) if c.is_whitespace())
        }
        Some(c) if c.is_ascii_digit() => {
            let rest = s.trim_start_matches(|c: char| c.is_ascii_digit());
            rest.starts_with(". ") || rest.starts_with(") ")
        }
        _ => false,
    }
}

/// The matching view of a line: normalised, list markers and edge
/// punctuation stripped, whitespace collapsed.
pub(crate) fn key_of(raw: &str) -> String {
    let norm = normalize_for_matching(raw);
    let stripped = norm
        .trim_start_matches(|c: char| BULLETS.contains(&c) || c.is_whitespace())
        .trim_matches(|c: char| {
            c.is_whitespace()
                || matches!(
                    c,
                    ':' | '：' | '.' | '|' | '-' | '–' | '—' | '(' | ')' | '[' | ']'
                )
        });
    stripped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether a line opens with a dateline: a place (and agency) in its
/// first few words, closed by a dash or a slash ("BAGHDAD —", "ANBAR, Iraq
/// (Reuters) -", "بغداد/ وكالة أنباء دجلة-", "الرافدين نيوز/-").
fn opens_with_dateline(line: &str) -> bool {
    line.split_whitespace().take(5).enumerate().any(|(i, w)| {
        matches!(w, "-" | "–" | "—")
            || w.ends_with(['-', '–', '—'])
            || (i == 0 && w.ends_with('/') && w.chars().count() > 1)
    })
}

/// Whether `word` (as written, edge punctuation aside) is a function word.
fn is_stop_word(word: &str) -> bool {
    let word = word.trim_matches(|c: char| !c.is_alphanumeric());
    // Function words are short: this skips normalising long words.
    word.chars().nth(6).is_none() && stop_words().contains(&normalize_for_matching(word))
}

fn stop_words() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| {
        STOP_WORDS
            .iter()
            .map(|w| normalize_for_matching(w))
            .collect()
    })
}

/// The cue table in matching order (longest phrases first, so "الخبر
/// السابق" wins over "السابق"), indexed by the phrases' first character:
/// a line can only start with, or be, a phrase that starts like it.
/// Trying all 160 phrases on every line was a third of the time of
/// cleaning 700,000 one-word lines.
struct CueIndex {
    table: Vec<(Cue, Match, String)>,
    /// Positions in `table` of the whole-line and prefix phrases starting
    /// with each character, in table order.
    by_first: HashMap<char, Vec<usize>>,
    /// Positions in `table` of the phrases matched anywhere.
    anywhere: Vec<usize>,
}

fn cue_index() -> &'static CueIndex {
    static INDEX: OnceLock<CueIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut table: Vec<_> = CUES.iter().map(|&(c, m, p)| (c, m, key_of(p))).collect();
        table.sort_by_key(|(_, _, p)| std::cmp::Reverse(p.len()));
        let mut by_first: HashMap<char, Vec<usize>> = HashMap::new();
        let mut anywhere = Vec::new();
        for (i, (_, how, phrase)) in table.iter().enumerate() {
            match how {
                Match::Anywhere => anywhere.push(i),
                Match::Whole | Match::Prefix => {
                    if let Some(c) = phrase.chars().next() {
                        by_first.entry(c).or_default().push(i);
                    }
                }
            }
        }
        CueIndex {
            table,
            by_first,
            anywhere,
        }
    })
}

/// The cue `key` (a line's matching view) starts with (or, if `anywhere`,
/// holds), and whether text follows it.
fn match_cue(key: &str, words: usize, anywhere: bool) -> Option<(Cue, bool)> {
    let index = cue_index();
    let starting = key
        .chars()
        .next()
        .and_then(|c| index.by_first.get(&c))
        .map_or(&[][..], Vec::as_slice);
    let anywhere = if anywhere && words <= 40 {
        index.anywhere.as_slice()
    } else {
        &[]
    };
    // The two candidate lists, merged back into table order.
    let (mut a, mut b) = (0, 0);
    loop {
        let i = match (starting.get(a), anywhere.get(b)) {
            (Some(&x), Some(&y)) if x < y => {
                a += 1;
                x
            }
            (_, Some(&y)) => {
                b += 1;
                y
            }
            (Some(&x), None) => {
                a += 1;
                x
            }
            (None, None) => return None,
        };
        let (cue, how, phrase) = &index.table[i];
        if let Some(found) = match_one(key, words, *cue, *how, phrase) {
            return Some(found);
        }
    }
}

/// Whether `key` matches one cue phrase, and whether text follows it.
fn match_one(key: &str, words: usize, cue: Cue, how: Match, phrase: &str) -> Option<(Cue, bool)> {
    match how {
        Match::Whole => (key == phrase).then_some((cue, false)),
        Match::Prefix => {
            let rest = key.strip_prefix(phrase)?;
            let spaced = rest.starts_with(char::is_whitespace);
            let delimited = matches!(
                rest.trim_start().chars().next(),
                None | Some(':' | '：' | '|' | '-' | '–' | '—' | '/' | '(')
            );
            if !(delimited || spaced) {
                return None; // the phrase is only the start of a longer word
            }
            // "المصدر: وكالة" is a credit; "المصدر الأمني قال إن..." is prose.
            let short = words <= 6 || cue == Cue::ReadAlso;
            if !(delimited || (spaced && short)) {
                return None;
            }
            let rest = rest.trim_start_matches(|c: char| {
                c.is_whitespace()
                    || c.is_ascii_digit()
                    || matches!(c, ':' | '：' | '|' | '-' | '–' | '—' | '/' | '(' | ')')
            });
            Some((cue, !rest.is_empty()))
        }
        Match::Anywhere => (words <= 40 && key.contains(phrase)).then_some((cue, true)),
    }
}

/// Three or more short items separated by `|`: a menu or a row of links.
fn is_menu_row(raw: &str) -> bool {
    let items: Vec<&str> = raw.split(['|', '¦']).map(str::trim).collect();
    items.len() >= 3 && items.iter().all(|i| i.split_whitespace().count() <= 4)
}

/// A short line that is mostly a date or time (with maybe a weekday, a
/// byline or an update notice): "الأربعاء 12.06.2024 - 09:30",
/// "By Staff Reporter | 13.04.2024, 10:15 GMT", "مارس 22, 2025آخر تحديث: مارس 22, 2025".
fn is_dateish(raw: &str, words: usize) -> bool {
    if words == 0 || words > 12 {
        return false;
    }
    let has_date = raw
        .split(|c: char| !(c.is_numeric() || matches!(c, '.' | '/' | ':' | '-')))
        .any(|tok| {
            let digits = tok.chars().filter(|c| c.is_numeric()).count();
            let seps = tok
                .chars()
                .filter(|c| matches!(c, '.' | '/' | ':' | '-'))
                .count();
            (digits >= 3 && seps >= 1 && tok.chars().next().is_some_and(char::is_numeric))
                || (digits == 4 && seps == 0)
        });
    if !has_date {
        return false;
    }
    let tokens: Vec<&str> = raw.split_whitespace().collect();
    let datey = tokens.iter().filter(|t| is_date_token(t)).count();
    let byline =
        raw.trim_start().to_lowercase().starts_with("by ") || raw.trim_start().starts_with("بقلم");
    byline || datey * 2 >= tokens.len()
}

/// A line like "آخر تحديث: 8 غشت 2023 - 12:25 م بغداد/ ... <prose>" holds a
/// date notice and the story's first paragraph: returns the two ranges.
fn split_date_notice(text: &str, r: Range<usize>) -> Option<(Range<usize>, Range<usize>)> {
    let line = &text[r.clone()];
    // Word count first: it is cheaper than the matching view.
    if line.split_whitespace().nth(13).is_none()
        || !matches!(match_cue(&key_of(line), 1, true), Some((Cue::Date, true)))
    {
        return None;
    }
    // Walk past the notice, its colon and the date/time tokens that follow.
    let colon = line.find([':', '：'])?;
    let mut end = colon + line[colon..].chars().next()?.len_utf8();
    let mut rest = &line[end..];
    loop {
        let trimmed = rest.trim_start();
        let word_len = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
        let word = &trimmed[..word_len];
        if word.is_empty() || !is_date_token(word) {
            break;
        }
        let advance = rest.len() - trimmed.len() + word_len;
        end += advance;
        rest = &line[end..];
    }
    let date = trim_range(text, r.start..r.start + end)?;
    let body = trim_range(text, r.start + end..r.end)?;
    Some((date, body))
}

fn is_date_token(word: &str) -> bool {
    const MONTHS: &[&str] = &[
        "يناير",
        "فبراير",
        "مارس",
        "أبريل",
        "ابريل",
        "مايو",
        "يونيو",
        "يوليو",
        "أغسطس",
        "اغسطس",
        "سبتمبر",
        "أكتوبر",
        "اكتوبر",
        "نوفمبر",
        "ديسمبر",
        "كانون",
        "شباط",
        "آذار",
        "نيسان",
        "أيار",
        "حزيران",
        "تموز",
        "آب",
        "أيلول",
        "تشرين",
        "الأول",
        "الثاني",
        "غشت",
        "يوليوز",
        "ماي",
        "يونيو",
        "شتنبر",
        "دجنبر",
        "نونبر",
        "ص",
        "م",
        "am",
        "pm",
        "gmt",
        "utc",
        "-",
        "/",
        "|",
        "،",
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "الساعة",
        "بتوقيت",
        "غرينتش",
        "السبت",
        "الأحد",
        "الاثنين",
        "الإثنين",
        "الثلاثاء",
        "الأربعاء",
        "الخميس",
        "الجمعة",
    ];
    let w = word.trim_matches(|c: char| matches!(c, ',' | '،' | '(' | ')'));
    w.is_empty()
        || w.chars()
            .all(|c| c.is_numeric() || matches!(c, ':' | '/' | '-' | '.' | ','))
        || w.trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .chars()
            .all(char::is_numeric)
            && w.chars().next().is_some_and(char::is_numeric)
        || MONTHS.iter().any(|m| m.eq_ignore_ascii_case(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Block {
        let b = blocks(line);
        assert_eq!(b.len(), 1, "{line:?}");
        b.into_iter().next().unwrap()
    }

    #[test]
    fn cues_match_variants_and_say_whether_text_follows() {
        let check = |line: &str, cue: Option<(Cue, bool)>| assert_eq!(one(line).cue, cue, "{line}");
        check("إقرأ أيضاً:", Some((Cue::ReadAlso, false)));
        check("اقرأ ايضا", Some((Cue::ReadAlso, false)));
        check(
            "إقرأ أيضا:عنوان خبر آخر عن الطقس",
            Some((Cue::ReadAlso, true)),
        );
        check(
            "Read also: Markets rally after the vote",
            Some((Cue::ReadAlso, true)),
        );
        check("المصدر: وكالة الأنباء", Some((Cue::Source, true)));
        check(
            "المصدر الأمني قال للصحفيين إن القوات وصلت إلى المنطقة صباح اليوم",
            None,
        );
        check("كلمات دلالية: العراق، الأمن", Some((Cue::Tags, true)));
        check("مقالات مشابهة", Some((Cue::Related, false)));
        check("  • مقالات مشابهة", Some((Cue::Related, false)));
        check(
            "Your browser does not support the video tag.",
            Some((Cue::Media, true)),
        );
        check(
            "© 2025 Example News. All rights reserved.",
            Some((Cue::Footer, true)),
        );
        check("التالي", Some((Cue::PrevNext, false)));
        check(
            "Shares of the state oil company rose sharply on Monday after the announcement.",
            None,
        );
    }

    #[test]
    fn features_tell_prose_from_headlines_and_lists() {
        let prose =
            one("وقال المتحدث باسم الوزارة إن الجانبين اتفقا على مواصلة التعاون في مجال التدريب.");
        assert!(prose.is_prose() && !prose.is_headline());
        let headline = one("بغداد وواشنطن تبحثان مستقبل التعاون العسكري");
        assert!(headline.is_headline() && !headline.is_prose());
        let bullet = one("  • وزير الخارجية يستقبل نظيره الأردني");
        assert!(bullet.listish && !bullet.is_headline());
    }

    #[test]
    fn a_date_notice_running_into_the_first_paragraph_is_split() {
        let line = "آخر تحديث: 3 مارس 2024 - 10:15 ص بغداد - أعلنت وزارة الدفاع اليوم عن وصول دفعة جديدة من المدربين إلى قاعدة التاجي شمال العاصمة.";
        let b = blocks(line);
        assert_eq!(b.len(), 2);
        assert_eq!(
            &line[b[0].range.clone()],
            "آخر تحديث: 3 مارس 2024 - 10:15 ص"
        );
        assert!(line[b[1].range.clone()].starts_with("بغداد - أعلنت"));
    }

    #[test]
    fn blocks_are_trimmed_lines_with_exact_offsets() {
        let text = "  first line  \r\n\n\u{200f}second\n   \n";
        let b = blocks(text);
        let got: Vec<&str> = b.iter().map(|b| &text[b.range.clone()]).collect();
        assert_eq!(got, ["first line", "second"]);
        assert!(b[0].listish, "an indented line counts as list-like");
    }
}
