//! Hard-wrapped text (wire feeds, text exported from PDFs, old archives):
//! line breaks inside sentences at a near-constant width. Left as lines,
//! the opening lines of such a story read as navigation (short, no final
//! stop) and every line break splits a sentence; rejoined, the cleaner
//! sees paragraphs.
//!
//! The evidence is the page's. Each line that runs on into the next says
//! the wrap width was between its length and its length plus the next
//! line's first word (it fitted; the word would not have). The width most
//! of them agree on ([`wrap_width`]) must be at least [`MIN_WIDTH`], agreed
//! on by most full lines at it, most of which do not end a sentence, with
//! signs of sentences running through the breaks (function words at them,
//! paragraphs ending in a short line). Then a line break is a wrap when
//! the line is full, or short only because the next word was long, or ends
//! in a function word; a run's first line must show it was wrapped (it
//! may be a headline); list items, indented new paragraphs, datelines,
//! cues, date lines and menu rows are never joined. Pages without the
//! evidence, such as those with a paragraph per line, stay as they are.
//! Linear but for one sort of the lines' width ranges.

use std::ops::Range;

/// A non-blank line of the page.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    /// Byte range, trimmed.
    pub range: Range<usize>,
    /// Started with white space in the page.
    pub indented: bool,
    /// Comes right after the previous line: one line break, no blank line.
    pub follows: bool,
    /// Length in characters.
    pub chars: usize,
    /// Length of its first word, in characters.
    pub first_word: usize,
    /// Number of words.
    pub words: usize,
    /// Ends like a sentence.
    pub terminal: bool,
    /// Starts with a list marker.
    pub bullet: bool,
    /// Its first word is a function word ("of", "في"), not capitalised
    /// ("The" opens headlines).
    pub starts_with_stop: bool,
    /// Its last word is a function word.
    pub ends_with_stop: bool,
    /// Opens with a dateline ("BAGHDAD —", "بغداد/ وكالة الأنباء-"): it
    /// starts a paragraph.
    pub dateline: bool,
}

/// Shortest wrap width taken as evidence: shorter runs of lines are menus,
/// headline lists and verse, not wrapped prose. Wire feeds wrap at 60-80
/// columns, PDF text at 70-110.
const MIN_WIDTH: usize = 40;

/// A line at least this share of the wrap width is full. Greedy wrapping
/// leaves lines between the width less the longest word and the width:
/// about 0.83 at 70 columns with 12-letter words.
const FULL: f64 = 0.8;

/// Longest a wrapped line may be, as a share of the width: proportional
/// fonts (PDF) give lines of a constant width in points but not in letters.
const OVER: f64 = 1.15;

/// The shortest share of the width a line may have and still be wrapped,
/// when the next word, too long to fit, explains the early break.
const SHORT: f64 = 0.5;

/// Slack, as a share of a line's length, on "the line fitted" and "the
/// next word would not have": letters are not all one width in a PDF, so a
/// full line of narrow ones holds more of them. Over the 17 annotated pages
/// wrapped at 44-95 columns (1,768 cases) and at 50-90 points in a
/// proportional font (1,394), these miss 1 and 7; when they were chosen, 0.06
/// and 0.06 missed 0 and 29, 0.12 and 0.06 missed 23 and 46.
const SLACK_FITTED: f64 = 0.09;
const SLACK: f64 = 0.06;

/// Full lines running on into the next that must agree on one width (the
/// next word would not have fitted) for the page to count as wrapped, at
/// least, and as a share of the full lines running on.
const MIN_AGREEING: usize = 3;
const MIN_AGREEING_SHARE: f64 = 0.6;

/// Most of those that may end like a sentence (sentences end at a wrap by
/// chance; a paragraph per line always ends so).
const MAX_TERMINAL_SHARE: f64 = 0.4;

/// Signs of sentences running through the lines, at least, and as a share
/// of the agreeing lines: breaks next to a function word ("of the\n",
/// "\nفي"; 15-50% of wrapped breaks, fewer in Arabic, whose particles are
/// mostly prefixes) and paragraphs whose last line ends like a sentence
/// after a full one (one in every 2-6 lines). A list of headlines, near one
/// width and without final stops, has neither; random bytes had 4 in 100.
const MIN_SENTENCE_SIGNS: usize = 2;
const MIN_SENTENCE_SIGN_SHARE: f64 = 0.1;

/// Longest a word may be and still force a line break: a longer "word" (a
/// URL, a run of random bytes with no spaces) would make any width agree.
const LONGEST_WORD: usize = 24;

/// Most characters a line may have per word and read as prose (words of
/// about six letters and a space): 2 MB of random bytes, with a space every
/// 80 bytes or so, otherwise passed for text wrapped at 300 columns.
const MAX_CHARS_PER_WORD: usize = 16;

fn slack(line: &Line) -> usize {
    (line.chars as f64 * SLACK).ceil() as usize
}

/// The widths that the break after `lines[i]` is consistent with: the line
/// fitted, and it and the next line's first word would not have.
fn widths(lines: &[Line], i: usize) -> (usize, usize) {
    let s = slack(&lines[i]);
    (
        lines[i]
            .chars
            .saturating_sub((lines[i].chars as f64 * SLACK_FITTED).ceil() as usize),
        lines[i].chars + lines[i + 1].first_word.min(LONGEST_WORD) + s,
    )
}

/// Whether the line break after `lines[i]` was forced by the next word at
/// `width`.
fn forced(lines: &[Line], i: usize, width: usize) -> bool {
    let (lo, hi) = widths(lines, i);
    lo <= width && width <= hi
}

fn full(line: &Line, width: usize) -> bool {
    let w = width as f64;
    (line.chars as f64) >= FULL * w && (line.chars as f64) <= OVER * w
}

/// The page's wrap width, when the page is hard-wrapped: the width the
/// most line breaks are consistent with (each line fitted, its next word
/// would not have), found by a sweep over their ranges.
pub(crate) fn wrap_width(lines: &[Line]) -> Option<usize> {
    // Lines of prose that run on into the next one, long enough to be wrapped.
    let running: Vec<usize> = (0..lines.len().saturating_sub(1))
        .filter(|&i| {
            lines[i + 1].follows
                && lines[i].chars >= MIN_WIDTH
                && lines[i].chars <= MAX_CHARS_PER_WORD * lines[i].words
                && !lines[i].bullet
                && !lines[i + 1].bullet
        })
        .collect();
    if running.len() < MIN_AGREEING {
        return None;
    }
    // +1 where a range opens, -1 just past where it closes; the middle of
    // the first run of widths where they overlap most (its ends are set
    // by the lines least like the rest: a headline, a long line). Lines
    // ending a sentence are left out: most end a paragraph, and a short
    // last line before the next paragraph would pull the width down.
    let mut events: Vec<(usize, isize)> = running
        .iter()
        .filter(|&&i| !lines[i].terminal)
        .flat_map(|&i| {
            let (lo, hi) = widths(lines, i);
            [(lo, 1), (hi + 1, -1)]
        })
        .collect();
    events.sort_unstable();
    let (mut depth, mut best) = (0isize, 0);
    let (mut from, mut to) = (0, 0);
    let mut in_best = false;
    let mut k = 0;
    while k < events.len() {
        let at = events[k].0;
        while k < events.len() && events[k].0 == at {
            depth += events[k].1;
            k += 1;
        }
        // Widths `at` up to the next event have this depth.
        let until = events.get(k).map_or(at, |e| e.0 - 1);
        if depth > best {
            (best, from, to, in_best) = (depth, at, until, true);
        } else if depth == best && in_best {
            to = until;
        } else {
            in_best = false;
        }
    }
    let width = (from + to) / 2;
    // The full lines at that width should show it, not contradict it.
    let full_running: Vec<usize> = running
        .into_iter()
        .filter(|&i| full(&lines[i], width))
        .collect();
    let agreeing: Vec<usize> = full_running
        .iter()
        .copied()
        .filter(|&i| forced(lines, i, width))
        .collect();
    let n = agreeing.len() as f64;
    let terminal = agreeing.iter().filter(|&&i| lines[i].terminal).count();
    let stop_breaks = agreeing
        .iter()
        .filter(|&&i| lines[i].ends_with_stop || lines[i + 1].starts_with_stop)
        .count();
    let paragraph_ends = agreeing
        .iter()
        .filter(|&&i| {
            // A short last line ending like a sentence, or one before a
            // blank line.
            let last = &lines[i + 1];
            last.terminal
                && (!full(last, width) || lines.get(i + 2).is_none_or(|after| !after.follows))
        })
        .count();
    (width >= MIN_WIDTH
        && agreeing.len() >= MIN_AGREEING
        && n >= MIN_AGREEING_SHARE * full_running.len() as f64
        && terminal as f64 <= MAX_TERMINAL_SHARE * n
        && stop_breaks + paragraph_ends >= MIN_SENTENCE_SIGNS
        && (stop_breaks + paragraph_ends) as f64 >= MIN_SENTENCE_SIGN_SHARE * n)
        .then_some(width)
}

/// What a line is, for joining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Text.
    Text,
    /// A date notice with text after it ("Updated: 3 May 2024 - BAGHDAD -
    /// The ministry..."): it may open a run, whose date is then split off.
    DateNotice,
    /// A cue, date or menu line: never joined.
    Furniture,
    /// A cue over a list ("Related", a bare "Read also"): it and the lines
    /// straight under it are never joined.
    ListHeader,
}

/// For every line of `text`, whether it runs on into the next one (the
/// line break between them is a wrap). `kind(i)` says what line `i` is; it
/// is asked only about lines that could be joined.
pub(crate) fn joins(text: &str, lines: &[Line], mut kind: impl FnMut(usize) -> Kind) -> Vec<bool> {
    let mut out = vec![false; lines.len()];
    let Some(width) = wrap_width(lines) else {
        return out;
    };
    // What line i is, asked once.
    let mut known: Vec<Option<Kind>> = vec![None; lines.len()];
    let mut kind_of = |i: usize| *known[i].get_or_insert_with(|| kind(i));
    // Whether line i is an item of a list under a list header.
    let mut listed = vec![false; lines.len()];
    for i in 0..lines.len().saturating_sub(1) {
        let (line, next) = (&lines[i], &lines[i + 1]);
        if i > 0 && line.follows && !out[i - 1] {
            listed[i] = listed[i - 1] || kind_of(i - 1) == Kind::ListHeader;
        }
        if !next.follows
            || listed[i]
            || line.bullet
            || next.bullet
            || (next.indented && !line.indented)
        {
            continue;
        }
        let w = width as f64;
        let chars = line.chars as f64;
        let opens_run = i == 0 || !out[i - 1];
        // A line opening with a dateline starts a paragraph, not a headline.
        let wrapped = if opens_run && !line.dateline {
            // A run's first line may be a headline over its paragraph:
            // it must show that it was wrapped, and not stand over a
            // dateline.
            chars >= SHORT * w
                && chars <= OVER * w
                && forced(lines, i, width)
                && (!next.dateline || kind_of(i) == Kind::DateNotice)
        } else if full(line, width) {
            // A full line ending a sentence ends its paragraph unless the
            // next word could not have fitted.
            !line.terminal || forced(lines, i, width)
        } else {
            chars >= SHORT * w && !line.terminal && forced(lines, i, width)
        };
        // A line ending in a function word ("of", "في") runs on, whatever
        // its length.
        let wrapped = wrapped || (line.ends_with_stop && !line.terminal && chars >= SHORT * w);
        // A repeated line (a headline twice) is not a wrap.
        let repeated = text[line.range.clone()] == text[next.range.clone()];
        out[i] = wrapped
            && !repeated
            && match kind_of(i) {
                Kind::Text => true,
                Kind::DateNotice => opens_run,
                Kind::Furniture | Kind::ListHeader => false,
            }
            && kind_of(i + 1) == Kind::Text;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stop(word: &str) -> bool {
        [
            "the", "of", "to", "in", "that", "and", "a", "on", "by", "for",
        ]
        .contains(&word)
    }

    /// Lines of `text` as the cleaner sees them (one per '\n').
    fn lines(text: &str) -> Vec<Line> {
        let mut out: Vec<Line> = Vec::new();
        let mut start = 0;
        let mut blank = true;
        for raw in text.split_inclusive('\n') {
            let t = raw.trim();
            if !t.is_empty() {
                let lead = raw.len() - raw.trim_start().len();
                out.push(Line {
                    range: start + lead..start + lead + t.len(),
                    indented: lead > 0,
                    follows: !blank && !out.is_empty(),
                    chars: t.chars().count(),
                    first_word: t.split_whitespace().next().map_or(0, |w| w.chars().count()),
                    words: t.split_whitespace().count(),
                    terminal: t.ends_with(['.', '!', '?', '؟']),
                    bullet: t.starts_with("• "),
                    starts_with_stop: t.split(' ').next().is_some_and(stop),
                    ends_with_stop: t.split(' ').next_back().is_some_and(stop),
                    dateline: false,
                });
            }
            blank = t.is_empty();
            start += raw.len();
        }
        out
    }

    /// Greedy wrap of `words` at `width` columns.
    fn wrap(text: &str, width: usize) -> String {
        let mut out = String::new();
        let mut line = 0;
        for word in text.split_whitespace() {
            let n = word.chars().count();
            if line > 0 && line + 1 + n > width {
                out.push('\n');
                line = 0;
            } else if line > 0 {
                out.push(' ');
                line += 1;
            }
            out.push_str(word);
            line += n;
        }
        out
    }

    const STORY: &str = "The ministry of planning said on Sunday that the new census \
        would begin in the autumn, after two years of delays caused by disputes \
        over the questions it should ask, and that field teams had already been \
        trained in every province. Officials expect the count to take two weeks.";

    #[test]
    fn a_wrapped_paragraph_is_one_run() {
        for width in [45, 60, 72, 90] {
            let text = wrap(STORY, width);
            let l = lines(&text);
            assert!(l.len() >= 4, "{text}");
            let w = wrap_width(&l).unwrap_or_else(|| panic!("no width at {width}:\n{text}"));
            assert!(
                w <= width && w as f64 >= 0.9 * width as f64,
                "{w} for {width}"
            );
            let j = joins(&text, &l, |_| Kind::Text);
            assert!(
                j[..l.len() - 1].iter().all(|&x| x),
                "{width}: {j:?}\n{text}"
            );
        }
    }

    #[test]
    fn paragraphs_without_blank_lines_end_at_short_lines() {
        let two = format!("{}\n{}", wrap(STORY, 60), wrap(STORY, 60));
        let l = lines(&two);
        let j = joins(&two, &l, |_| Kind::Text);
        let ends: Vec<usize> = (0..l.len()).filter(|&i| !j[i]).collect();
        let first = wrap(STORY, 60).lines().count();
        assert_eq!(ends, [first - 1, l.len() - 1], "{two}");
    }

    #[test]
    fn pages_that_are_not_wrapped_have_no_width() {
        let check = |text: &str| {
            assert_eq!(wrap_width(&lines(text)), None, "{text}");
        };
        // A paragraph per line, with and without blank lines.
        let para = STORY.replace("  ", " ");
        check(&format!("{para}\n\n{para}\n\n{para}\n"));
        check(&format!("{para}\n{para}\nShort one here.\n{para}\n"));
        // Menus, headline lists, short lines.
        check("Home\nWorld\nSport\nBusiness\nCulture\n");
        check(
            "• Markets rally after the central bank holds interest rates\n\
             • Flooding closes the coastal road for a third day running\n\
             • Union and ministry agree to resume wage talks next week\n\
             • Football: the national team names its squad for the cup\n",
        );
        // The same headlines unmarked: near one width, no final stops, but
        // no break falls next to a function word.
        check(
            "Markets rally after the central bank holds interest rates\n\
             Flooding closes the coastal road for a third day running\n\
             Union and ministry agree to resume wage talks next week\n\
             Football: national team names its squad for the cup finals\n\
             Drivers protest as fuel prices climb for a second month\n",
        );
        // Consecutive sentences that all end like sentences.
        check(
            "The talks resumed on Monday after a week of delays in the capital.\n\
             Both sides said they hoped to reach an agreement before the summer.\n\
             The union has threatened a strike if its demands are not all met.\n\
             The ministry said it would publish its offer on Wednesday morning.\n",
        );
    }

    #[test]
    fn furniture_lines_are_never_joined() {
        let text = format!(
            "{}\n\n{}\nRead also: Markets rally after the bank holds rates\n",
            wrap(STORY, 60),
            wrap(STORY, 60)
        );
        let l = lines(&text);
        let last = l.len() - 1;
        let j = joins(&text, &l, |i| {
            if i == last {
                Kind::Furniture
            } else {
                Kind::Text
            }
        });
        assert!(!j[last - 1] && !j[last]);
        assert!(j[..last - 1].iter().filter(|&&x| x).count() >= 6, "{j:?}");
    }
}
