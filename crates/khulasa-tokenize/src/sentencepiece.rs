//! A compact SentencePiece-unigram tokenizer (XLM-RoBERTa, e5, mBART, …).
//!
//! It reads the same `tokenizer.json` as Hugging Face's `tokenizers` and
//! gives the same ids and offsets, but keeps the 250,000-piece vocabulary as
//! one string, an id-per-piece hash index and a score array (about 8 MB) instead of
//! hash maps and a node-per-character trie (about 280 MB).
//!
//! Only the pipeline these models use is accepted: special tokens split off
//! the raw text, a `Precompiled` normalizer and `Replace`s, the `Metaspace`
//! pre-tokenizer, a `Unigram` model without byte fallback, and a template or
//! RoBERTa/BERT post-processor. [`SentencePiece::from_json`] says
//! [`Unsupported`] for anything else, and the caller falls back to
//! `tokenizers`.

use std::ops::Range;

use std::hash::BuildHasher;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use hashbrown::DefaultHashBuilder;
use hashbrown::hash_table::{Entry, HashTable};
use serde::Deserialize;
use serde_json::Value;
use spm_precompiled::Precompiled;
use unicode_segmentation::UnicodeSegmentation;

use crate::Encoding;
use crate::normalized::Normalized;

/// Why a `tokenizer.json` is not one this module reproduces.
#[derive(Debug)]
pub(crate) struct Unsupported(pub(crate) String);

fn unsupported<T>(what: impl Into<String>) -> Result<T, Unsupported> {
    Err(Unsupported(what.into()))
}

/// Score penalty of an unknown character below the lowest piece
/// (SentencePiece's `kUnkPenalty`).
const UNK_PENALTY: f64 = 10.0;

pub(crate) struct SentencePiece {
    /// Special tokens matched in the raw text, and their ids.
    specials: Option<(AhoCorasick, Vec<u32>)>,
    normalizers: Vec<Normalizer>,
    replacement: char,
    prepend: Prepend,
    split: bool,
    vocab: Vocab,
    unk_id: u32,
    unk_score: f64,
    head: Vec<u32>,
    tail: Vec<u32>,
}

enum Normalizer {
    Precompiled(Box<Precompiled>),
    Replace { pattern: Pattern, content: String },
}

enum Pattern {
    Literal(String),
    Regex(regex::Regex),
}

#[derive(Clone, Copy, PartialEq)]
enum Prepend {
    Always,
    First,
    Never,
}

/// The pieces, their scores and a hash index over them.
struct Vocab {
    /// All pieces, concatenated.
    text: String,
    /// Piece `i` is `text[ends[i - 1]..ends[i]]`.
    ends: Vec<u32>,
    scores: Vec<f64>,
    /// Ids by piece; of a piece written twice only the last id (the one a
    /// string-to-id map built in order keeps, as HF's does).
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// Longest piece, in bytes.
    max_len: usize,
}

impl Vocab {
    fn new(pieces: Vec<(String, f64)>) -> Result<Self, Unsupported> {
        let too_large = || Unsupported("vocabulary too large".into());
        let mut text = String::with_capacity(pieces.iter().map(|(p, _)| p.len()).sum());
        let mut ends = Vec::with_capacity(pieces.len());
        let mut scores = Vec::with_capacity(pieces.len());
        for (piece, score) in &pieces {
            text.push_str(piece);
            ends.push(u32::try_from(text.len()).map_err(|_| too_large())?);
            scores.push(*score);
        }
        let count = u32::try_from(pieces.len()).map_err(|_| too_large())?;
        drop(pieces);
        let mut vocab = Self {
            text,
            ends,
            scores,
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            max_len: 0,
        };
        let mut index = HashTable::with_capacity(count as usize);
        let mut max_len = 0;
        for id in 0..count {
            let piece = vocab.piece(id);
            max_len = max_len.max(piece.len());
            let hash = vocab.hasher.hash_one(piece);
            match index.entry(
                hash,
                |&other| vocab.piece(other) == piece,
                |&other| vocab.hasher.hash_one(vocab.piece(other)),
            ) {
                Entry::Occupied(mut e) => *e.get_mut() = id,
                Entry::Vacant(e) => {
                    e.insert(id);
                }
            }
        }
        vocab.index = index;
        vocab.max_len = max_len;
        Ok(vocab)
    }

    fn piece(&self, id: u32) -> &[u8] {
        let i = id as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text.as_bytes()[start..self.ends[i] as usize]
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    /// Calls `found(len, id)` for every piece that is a prefix of `s` (which
    /// starts at a character boundary), shortest first.
    fn prefixes(&self, s: &[u8], mut found: impl FnMut(usize, u32)) {
        let longest = s.len().min(self.max_len);
        for end in 1..=longest {
            // Pieces are whole characters: only try lengths that end one.
            if s.get(end).is_some_and(|&b| b & 0xC0 == 0x80) {
                continue;
            }
            if let Some(id) = self.id(&s[..end]) {
                found(end, id);
            }
        }
    }

    fn id(&self, piece: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(piece);
        self.index
            .find(hash, |&id| self.piece(id) == piece)
            .copied()
    }
}

/// The parts of `tokenizer.json` read here.
#[derive(Deserialize)]
struct File {
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
    normalizer: Option<Value>,
    pre_tokenizer: Option<Value>,
    post_processor: Option<Value>,
    model: Model,
}

#[derive(Deserialize)]
struct AddedToken {
    id: u32,
    content: String,
    #[serde(default)]
    single_word: bool,
    #[serde(default)]
    lstrip: bool,
    #[serde(default)]
    rstrip: bool,
    #[serde(default)]
    normalized: bool,
}

/// Only the model's type, so other models are not parsed twice.
#[derive(Deserialize)]
struct Head {
    model: ModelType,
}

#[derive(Deserialize)]
struct ModelType {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Model {
    unk_id: Option<u32>,
    vocab: Vec<(String, f64)>,
    #[serde(default)]
    byte_fallback: bool,
}

impl SentencePiece {
    /// Reads a `tokenizer.json`; `Ok(Err(_))` when it is valid JSON this
    /// module does not reproduce exactly.
    pub(crate) fn from_json(json: &str) -> Result<Result<Self, Unsupported>, serde_json::Error> {
        let head: Head = serde_json::from_str(json)?;
        if head.model.kind != "Unigram" {
            return Ok(unsupported(format!("a {} model", head.model.kind)));
        }
        let file: File = serde_json::from_str(json)?;
        Ok(Self::build(file))
    }

    fn build(file: File) -> Result<Self, Unsupported> {
        if file.model.byte_fallback {
            return unsupported("byte fallback");
        }
        let Some(unk_id) = file.model.unk_id else {
            return unsupported("no unk_id");
        };
        if unk_id as usize >= file.model.vocab.len() {
            return unsupported("unk_id outside the vocabulary");
        }
        let min_score = file
            .model
            .vocab
            .iter()
            .map(|(_, s)| *s)
            .fold(f64::INFINITY, f64::min);
        let specials = specials(&file.added_tokens)?;
        let normalizers = match &file.normalizer {
            None | Some(Value::Null) => Vec::new(),
            Some(n) => normalizers(n)?,
        };
        let (replacement, prepend, split) = match &file.pre_tokenizer {
            Some(p) => metaspace(p)?,
            None => return unsupported("no pre-tokenizer"),
        };
        let vocab = Vocab::new(file.model.vocab)?;
        let (head, tail) = match &file.post_processor {
            None | Some(Value::Null) => (Vec::new(), Vec::new()),
            Some(p) => post_processor(p, &vocab)?,
        };
        Ok(Self {
            specials,
            normalizers,
            replacement,
            prepend,
            split,
            vocab,
            unk_id,
            unk_score: min_score - UNK_PENALTY,
            head,
            tail,
        })
    }

    /// Special tokens put before and after a single sequence.
    pub(crate) fn special_tokens(&self) -> (&[u32], &[u32]) {
        (&self.head, &self.tail)
    }

    pub(crate) fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// Token ids and original byte offsets of `text`, without the special
    /// tokens of the post-processor.
    pub(crate) fn encode(&self, text: &str) -> Encoding {
        let mut out = Encoding::default();
        let mut last = 0;
        if let Some((matcher, ids)) = &self.specials {
            for m in matcher.find_iter(text) {
                if last < m.start() {
                    self.encode_segment(text, last..m.start(), &mut out);
                }
                out.ids.push(ids[m.pattern().as_usize()]);
                out.offsets.push((m.start(), m.end()));
                last = m.end();
            }
        }
        if last < text.len() {
            self.encode_segment(text, last..text.len(), &mut out);
        }
        out
    }

    fn encode_segment(&self, text: &str, segment: Range<usize>, out: &mut Encoding) {
        let base = segment.start;
        let mut n = Normalized::new(&text[segment]);
        for normalizer in &self.normalizers {
            match normalizer {
                Normalizer::Precompiled(p) => precompiled(p, &mut n),
                Normalizer::Replace { pattern, content } => {
                    let matches = pattern.find(n.as_str());
                    n.replace(&matches, content);
                }
            }
        }
        let r = self.replacement;
        let spaces: Vec<Range<usize>> = n
            .as_str()
            .match_indices(' ')
            .map(|(i, _)| i..i + 1)
            .collect();
        n.replace(&spaces, r.encode_utf8(&mut [0; 4]));
        let prepend = match self.prepend {
            Prepend::Always => true,
            Prepend::First => base == 0,
            Prepend::Never => false,
        };
        if prepend && !n.as_str().starts_with(r) {
            n.prepend(r);
        }
        let s = n.as_str();
        let mut words = Vec::new();
        if self.split {
            // Each replacement character starts a word, but one directly
            // followed by another stands alone.
            let mut start = 0;
            for (i, _) in s.match_indices(r) {
                if i > start {
                    words.push(start..i);
                }
                start = i;
            }
            if start < s.len() {
                words.push(start..s.len());
            }
        } else if !s.is_empty() {
            words.push(0..s.len());
        }
        let mut pieces = Vec::new();
        for word in words {
            pieces.clear();
            self.viterbi(&s[word.clone()], &mut pieces);
            for (range, id) in &pieces {
                let (start, end) =
                    n.original_span(word.start + range.start..word.start + range.end);
                out.ids.push(*id);
                out.offsets.push((base + start, base + end));
            }
        }
    }

    /// The best segmentation of `word` into pieces (byte ranges of `word`
    /// and ids), runs of unknown characters fused into one `unk`.
    fn viterbi(&self, word: &str, out: &mut Vec<(Range<usize>, u32)>) {
        #[derive(Clone, Copy)]
        struct Best {
            score: f64,
            start: usize,
            id: u32,
            set: bool,
        }
        let bytes = word.as_bytes();
        let mut best = vec![
            Best {
                score: 0.0,
                start: 0,
                id: 0,
                set: false,
            };
            bytes.len() + 1
        ];
        let offer = |best: &mut [Best], at: usize, start: usize, score: f64, id: u32| {
            let b = &mut best[at];
            if !b.set || score > b.score {
                *b = Best {
                    score,
                    start,
                    id,
                    set: true,
                };
            }
        };
        for (start, c) in word.char_indices() {
            let here = best[start].score;
            let char_len = c.len_utf8();
            let mut single = false;
            self.vocab.prefixes(&bytes[start..], |len, id| {
                offer(
                    &mut best,
                    start + len,
                    start,
                    here + self.vocab.scores[id as usize],
                    id,
                );
                single |= len == char_len;
            });
            if !single {
                offer(
                    &mut best,
                    start + char_len,
                    start,
                    here + self.unk_score,
                    self.unk_id,
                );
            }
        }
        let first = out.len();
        let mut end = bytes.len();
        let mut unk_end = None;
        while end > 0 {
            let node = best[end];
            if node.id == self.unk_id {
                unk_end.get_or_insert(end);
            } else {
                if let Some(e) = unk_end.take() {
                    out.push((end..e, self.fused_unk_id(&bytes[end..e])));
                }
                out.push((node.start..end, node.id));
            }
            end = node.start;
        }
        if let Some(e) = unk_end {
            out.push((0..e, self.fused_unk_id(&bytes[..e])));
        }
        out[first..].reverse();
    }

    /// A fused run of unknown characters is looked up as a whole, as HF does.
    fn fused_unk_id(&self, run: &[u8]) -> u32 {
        self.vocab.id(run).unwrap_or(self.unk_id)
    }
}

impl Pattern {
    fn find(&self, s: &str) -> Vec<Range<usize>> {
        match self {
            Pattern::Literal(p) if p.is_empty() => Vec::new(),
            Pattern::Literal(p) => s
                .match_indices(p.as_str())
                .map(|(i, m)| i..i + m.len())
                .collect(),
            Pattern::Regex(r) => r
                .find_iter(s)
                .filter(|m| !m.is_empty())
                .map(|m| m.range())
                .collect(),
        }
    }
}

/// HF's `Precompiled` normalizer, quirks included: whole graphemes shorter
/// than 6 bytes are looked up first, then their characters one by one.
fn precompiled(map: &Precompiled, n: &mut Normalized) {
    let s = n.as_str();
    let mut edits: Vec<(char, isize)> = Vec::with_capacity(s.len());
    let mut modified = false;
    for grapheme in s.graphemes(true) {
        if grapheme.len() < 6
            && let Some(norm) = map.transform(grapheme)
        {
            modified = true;
            replace_edits(&mut edits, grapheme, norm);
            continue;
        }
        for (i, c) in grapheme.char_indices() {
            let part = &grapheme[i..i + c.len_utf8()];
            match map.transform(part) {
                Some(norm) => {
                    modified = true;
                    replace_edits(&mut edits, part, norm);
                }
                None => edits.push((c, 0)),
            }
        }
    }
    if modified {
        n.transform(&edits);
    }
}

/// HF's `precompiled::replace`: `new` replaces `old`; extra characters are
/// insertions, and missing ones are removed by the last edit written (even
/// one of an earlier grapheme).
fn replace_edits(edits: &mut Vec<(char, isize)>, old: &str, new: &str) {
    let diff = new.chars().count() as isize - old.chars().count() as isize;
    edits.extend(new.chars().map(|c| (c, 0)));
    if diff > 0 {
        for e in edits.iter_mut().rev().take(diff as usize) {
            e.1 = 1;
        }
    } else if diff < 0
        && let Some(e) = edits.last_mut()
    {
        e.1 += diff;
    }
}

fn specials(tokens: &[AddedToken]) -> Result<Option<(AhoCorasick, Vec<u32>)>, Unsupported> {
    let mut patterns = Vec::new();
    let mut ids = Vec::new();
    for t in tokens {
        if t.normalized || t.lstrip || t.rstrip || t.single_word {
            return unsupported(format!("added token {:?} with matching options", t.content));
        }
        if !t.content.is_empty() {
            patterns.push(t.content.as_str());
            ids.push(t.id);
        }
    }
    if patterns.is_empty() {
        return Ok(None);
    }
    let matcher = AhoCorasickBuilder::new()
        .match_kind(MatchKind::LeftmostLongest)
        .build(&patterns)
        .map_err(|e| Unsupported(e.to_string()))?;
    Ok(Some((matcher, ids)))
}

fn kind(v: &Value) -> &str {
    v.get("type").and_then(Value::as_str).unwrap_or("")
}

fn normalizers(v: &Value) -> Result<Vec<Normalizer>, Unsupported> {
    match kind(v) {
        "Sequence" => {
            let list = v
                .get("normalizers")
                .and_then(Value::as_array)
                .ok_or_else(|| Unsupported("normalizer sequence without a list".into()))?;
            let mut out = Vec::new();
            for n in list {
                out.extend(normalizers(n)?);
            }
            Ok(out)
        }
        "Precompiled" => {
            let p = Precompiled::deserialize(v).map_err(|e| Unsupported(e.to_string()))?;
            Ok(vec![Normalizer::Precompiled(Box::new(p))])
        }
        "Replace" => {
            let content = v
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| Unsupported("Replace without content".into()))?
                .to_string();
            let pattern = match v.get("pattern") {
                Some(p) => match (p.get("String"), p.get("Regex")) {
                    (Some(Value::String(s)), None) => Pattern::Literal(s.clone()),
                    (None, Some(Value::String(r))) => Pattern::Regex(
                        regex::Regex::new(r).map_err(|e| Unsupported(e.to_string()))?,
                    ),
                    _ => return unsupported("Replace pattern"),
                },
                None => return unsupported("Replace without pattern"),
            };
            Ok(vec![Normalizer::Replace { pattern, content }])
        }
        other => unsupported(format!("a {other} normalizer")),
    }
}

fn metaspace(v: &Value) -> Result<(char, Prepend, bool), Unsupported> {
    if kind(v) != "Metaspace" {
        return unsupported(format!("a {} pre-tokenizer", kind(v)));
    }
    let mut chars = v
        .get("replacement")
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars();
    let (Some(replacement), None) = (chars.next(), chars.next()) else {
        return unsupported("Metaspace replacement");
    };
    let mut prepend = match v.get("prepend_scheme").and_then(Value::as_str) {
        None | Some("always") => Prepend::Always,
        Some("first") => Prepend::First,
        Some("never") => Prepend::Never,
        Some(other) => return unsupported(format!("prepend scheme {other}")),
    };
    if v.get("add_prefix_space").and_then(Value::as_bool) == Some(false) {
        prepend = Prepend::Never;
    }
    let split = v.get("split").and_then(Value::as_bool).unwrap_or(true);
    Ok((replacement, prepend, split))
}

fn post_processor(v: &Value, vocab: &Vocab) -> Result<(Vec<u32>, Vec<u32>), Unsupported> {
    match kind(v) {
        "TemplateProcessing" => {
            let single = v
                .get("single")
                .and_then(Value::as_array)
                .ok_or_else(|| Unsupported("template without single".into()))?;
            let (mut head, mut tail) = (Vec::new(), Vec::new());
            let mut seen_sequence = false;
            for piece in single {
                if piece.get("Sequence").is_some() {
                    if seen_sequence {
                        return unsupported("template with two sequences");
                    }
                    seen_sequence = true;
                } else if let Some(name) = piece.pointer("/SpecialToken/id").and_then(Value::as_str)
                {
                    let ids = v
                        .get("special_tokens")
                        .and_then(|t| t.get(name))
                        .and_then(|t| t.get("ids"))
                        .and_then(Value::as_array)
                        .ok_or_else(|| Unsupported(format!("template token {name} without ids")))?;
                    let side = if seen_sequence { &mut tail } else { &mut head };
                    for id in ids {
                        let id = id.as_u64().and_then(|i| u32::try_from(i).ok());
                        side.push(id.ok_or_else(|| Unsupported("template id".into()))?);
                    }
                } else {
                    return unsupported("template piece");
                }
            }
            Ok((head, tail))
        }
        "RobertaProcessing" | "BertProcessing" => {
            let id = |key: &str| {
                v.get(key)
                    .and_then(|p| p.get(1))
                    .and_then(Value::as_u64)
                    .and_then(|i| u32::try_from(i).ok())
                    .filter(|&i| (i as usize) < vocab.len())
                    .ok_or_else(|| Unsupported(format!("post-processor {key}")))
            };
            Ok((vec![id("cls")?], vec![id("sep")?]))
        }
        other => unsupported(format!("a {other} post-processor")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(pieces: &[(&str, f64)]) -> Vocab {
        Vocab::new(pieces.iter().map(|(p, s)| (p.to_string(), *s)).collect()).unwrap()
    }

    #[test]
    fn prefix_search_finds_every_prefix_shortest_first() {
        let v = vocab(&[
            ("<unk>", 0.0),
            ("a", -1.0),
            ("ab", -2.0),
            ("abc", -3.0),
            ("b", -1.0),
            ("abd", -1.0),
        ]);
        let mut found = Vec::new();
        v.prefixes(b"abcx", |len, id| found.push((len, id)));
        assert_eq!(found, vec![(1, 1), (2, 2), (3, 3)]);
        found.clear();
        v.prefixes(b"xyz", |len, id| found.push((len, id)));
        assert!(found.is_empty());
        assert_eq!(v.id(b"abd"), Some(5));
        assert_eq!(v.id(b"abe"), None);
    }

    #[test]
    fn a_piece_written_twice_keeps_its_last_id() {
        let v = vocab(&[("<unk>", 0.0), ("x", -1.0), ("x", -2.0)]);
        assert_eq!(v.id(b"x"), Some(2));
        let mut found = Vec::new();
        v.prefixes(b"x", |len, id| found.push((len, id)));
        assert_eq!(found, vec![(1, 2)]);
    }

    fn model(pieces: &[(&str, f64)]) -> SentencePiece {
        let json = serde_json::json!({
            "added_tokens": [{"id": 0, "content": "<unk>", "special": true}],
            "normalizer": null,
            "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "add_prefix_space": true},
            "post_processor": null,
            "model": {"type": "Unigram", "unk_id": 0, "vocab": pieces},
        });
        SentencePiece::from_json(&json.to_string())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn viterbi_takes_the_best_path_and_fuses_unknowns() {
        let m = model(&[
            ("<unk>", 0.0),
            ("▁", -3.0),
            ("▁ab", -2.0),
            ("▁a", -1.0),
            ("b", -1.5),
            ("c", -1.0),
        ]);
        // ▁ab (-2) beats ▁a + b (-2.5).
        let e = m.encode("ab");
        assert_eq!(e.ids, vec![2]);
        assert_eq!(e.offsets, vec![(0, 2)]);
        // Two unknown characters in a row are one unk token.
        let e = m.encode("c xyc");
        assert_eq!(e.ids, vec![1, 5, 1, 0, 5]);
        assert_eq!(e.offsets, vec![(0, 1), (0, 1), (1, 2), (2, 4), (4, 5)]);
        // A special token in the text is kept whole.
        let e = m.encode("ab<unk>ab");
        assert_eq!(e.ids, vec![2, 0, 2]);
        assert_eq!(e.offsets, vec![(0, 2), (2, 7), (7, 9)]);
    }

    #[test]
    fn other_pipelines_are_refused() {
        let json = serde_json::json!({"model": {"type": "WordPiece", "vocab": {"a": 0}}});
        assert!(
            SentencePiece::from_json(&json.to_string())
                .unwrap()
                .is_err()
        );
        let json = serde_json::json!({
            "pre_tokenizer": {"type": "Whitespace"},
            "model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0]]},
        });
        assert!(
            SentencePiece::from_json(&json.to_string())
                .unwrap()
                .is_err()
        );
    }
}
