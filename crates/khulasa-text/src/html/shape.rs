//! The shape of the tree an HTML parser would build from a page (its
//! depth, its element count, its open formatting elements) measured from
//! the tokens alone, without building it. It follows the tree builder's
//! rules that make trees deep or big: implied end tags (`<p>`, `<li>`,
//! table cells), scopes, implied table rows, and the list of active
//! formatting elements that the parser re-opens in every new paragraph
//! (the "adoption agency" that turns 1,500 unclosed `<b class=..>` tags
//! into 1.5 million elements).
//!
//! Every operation costs O(1) amortised, or O(open formatting elements),
//! which the limit bounds: the measure stops at the first limit passed.

use std::collections::HashMap;

use super::tokenize::StartTag;
use crate::CleanLimits;

/// The first limit a page passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exceeded {
    /// [`CleanLimits::max_html_depth`].
    Depth,
    /// [`CleanLimits::max_html_elements`].
    Elements,
    /// [`CleanLimits::max_html_depth_sum`].
    DepthSum,
    /// [`CleanLimits::max_html_open_formatting`].
    OpenFormatting,
    /// [`MAX_ATTRIBUTES`] on one tag.
    Attributes,
    /// [`MAX_CLONED_ATTRIBUTE_BYTES`].
    ClonedAttributes,
}

/// Most attributes on one tag of a page handed to the parser. html5ever's
/// tokenizer compares each attribute with every earlier one of its tag
/// (10,000 attributes: 24 ms; 20,000: 90 ms; 40,000: 368 ms), so a tag
/// costs the square of its attributes; no real page has tags with more
/// than a few dozen.
pub(crate) const MAX_ATTRIBUTES: usize = 128;

/// Most bytes of attributes on the formatting elements the parser
/// re-opens. The clones share their attributes' memory, but readability
/// reads them again for each: 5,000 clones of a `<b>` with a 100 KB
/// `class` took 1.38 s (2.6 ns a byte), of a 10-byte one 66 ms.
pub(crate) const MAX_CLONED_ATTRIBUTE_BYTES: usize = 16 << 20;

/// Names the rules need, interned first so their ids are constants.
const KNOWN: &[&str] = &[
    "html", "table", "template", "td", "th", "caption", "marquee", "object", "applet", "button",
    "ol", "ul", "p", "li", "dd", "dt", "tr", "tbody", "thead", "tfoot", "form", "h1", "h2", "h3",
    "h4", "h5", "h6", "a", "nobr", "option", "optgroup", "svg", "math", "div", "address",
];
const HTML: u32 = 0;
const TABLE: u32 = 1;
const TEMPLATE: u32 = 2;
const TD: u32 = 3;
const TH: u32 = 4;
const CAPTION: u32 = 5;
const MARQUEE: u32 = 6;
const OBJECT: u32 = 7;
const APPLET: u32 = 8;
const BUTTON: u32 = 9;
const OL: u32 = 10;
const UL: u32 = 11;
const P: u32 = 12;
const LI: u32 = 13;
const DD: u32 = 14;
const DT: u32 = 15;
const TR: u32 = 16;
const TBODY: u32 = 17;
const THEAD: u32 = 18;
const TFOOT: u32 = 19;
const FORM: u32 = 20;
const HEADINGS: [u32; 6] = [21, 22, 23, 24, 25, 26];
const A: u32 = 27;
const NOBR: u32 = 28;
const OPTION: u32 = 29;
const OPTGROUP: u32 = 30;
const SVG: u32 = 31;
const MATH: u32 = 32;
const DIV: u32 = 33;
const ADDRESS: u32 = 34;

/// Elements that bound "in scope" searches.
const DEFAULT_SCOPE: &[u32] = &[
    APPLET, CAPTION, HTML, TABLE, TD, TH, MARQUEE, OBJECT, TEMPLATE,
];
const BUTTON_SCOPE: &[u32] = &[
    APPLET, CAPTION, HTML, TABLE, TD, TH, MARQUEE, OBJECT, TEMPLATE, BUTTON,
];
const LIST_ITEM_SCOPE: &[u32] = &[
    APPLET, CAPTION, HTML, TABLE, TD, TH, MARQUEE, OBJECT, TEMPLATE, OL, UL,
];
const TABLE_SCOPE: &[u32] = &[HTML, TABLE, TEMPLATE];

/// Start tags that close an open `<p>` and do not re-open formatting.
fn closes_p(name: &str) -> bool {
    matches!(
        name,
        "address"
            | "article"
            | "aside"
            | "blockquote"
            | "center"
            | "details"
            | "dialog"
            | "dir"
            | "div"
            | "dl"
            | "fieldset"
            | "figcaption"
            | "figure"
            | "footer"
            | "header"
            | "hgroup"
            | "main"
            | "menu"
            | "nav"
            | "ol"
            | "p"
            | "search"
            | "section"
            | "summary"
            | "ul"
            | "pre"
            | "listing"
            | "plaintext"
    )
}

fn is_formatting(name: &str) -> bool {
    matches!(
        name,
        "a" | "b"
            | "big"
            | "code"
            | "em"
            | "font"
            | "i"
            | "nobr"
            | "s"
            | "small"
            | "strike"
            | "strong"
            | "tt"
            | "u"
    )
}

/// The parser's "special" elements: an end tag for another element does
/// not close past them.
fn is_special(name: &str) -> bool {
    closes_p(name)
        || matches!(
            name,
            "applet"
                | "area"
                | "base"
                | "basefont"
                | "bgsound"
                | "body"
                | "br"
                | "button"
                | "caption"
                | "col"
                | "colgroup"
                | "dd"
                | "dt"
                | "embed"
                | "form"
                | "frame"
                | "frameset"
                | "h1"
                | "h2"
                | "h3"
                | "h4"
                | "h5"
                | "h6"
                | "head"
                | "hr"
                | "html"
                | "iframe"
                | "img"
                | "input"
                | "keygen"
                | "li"
                | "link"
                | "marquee"
                | "meta"
                | "noembed"
                | "noframes"
                | "noscript"
                | "object"
                | "param"
                | "script"
                | "select"
                | "source"
                | "style"
                | "table"
                | "tbody"
                | "td"
                | "template"
                | "textarea"
                | "tfoot"
                | "th"
                | "thead"
                | "title"
                | "tr"
                | "track"
                | "wbr"
                | "xmp"
        )
}

#[derive(Debug, Clone, Copy)]
struct OpenElement {
    name: u32,
    special: bool,
    /// Popping it clears the formatting list back to its marker.
    marker: bool,
    /// Its entry in the list of active formatting elements.
    entry: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
enum Entry {
    Marker,
    Formatting {
        id: usize,
        name: u32,
        /// Hash of the attributes: the parser keeps at most three
        /// identical entries ("Noah's Ark").
        fingerprint: u64,
        /// What its attributes weigh.
        bytes: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryState {
    Removed,
    /// In the list and its element is open.
    Open,
    /// In the list, its element closed: the parser re-opens it.
    Closed,
}

/// The measure, fed token by token.
#[derive(Debug)]
pub(crate) struct Shape {
    max_depth: usize,
    max_elements: usize,
    max_formatting: usize,
    max_depth_sum: usize,
    /// Elements the parser would create.
    pub elements: usize,
    /// Deepest nesting seen.
    pub depth: usize,
    /// The sum of every element's depth.
    pub depth_sum: usize,
    /// Bytes of attributes on re-opened formatting elements.
    pub cloned_bytes: usize,
    /// Most formatting elements active at once.
    pub open_formatting: usize,
    exceeded: Option<Exceeded>,
    names: HashMap<String, u32>,
    open: Vec<OpenElement>,
    /// Stack positions of the open elements of each name.
    positions: Vec<Vec<usize>>,
    /// Stack positions of the open special elements.
    specials: Vec<usize>,
    active: Vec<Entry>,
    states: Vec<EntryState>,
    /// Formatting entries in `active`, and those of them closed.
    formatting: usize,
    closed: usize,
}

impl Shape {
    pub(crate) fn new(limits: &CleanLimits) -> Self {
        let names = KNOWN
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), i as u32))
            .collect();
        Self {
            max_depth: limits.max_html_depth,
            max_elements: limits.max_html_elements,
            max_formatting: limits.max_html_open_formatting,
            max_depth_sum: limits.max_html_depth_sum,
            elements: 0,
            depth: 0,
            depth_sum: 0,
            cloned_bytes: 0,
            open_formatting: 0,
            exceeded: None,
            names,
            open: Vec::new(),
            positions: vec![Vec::new(); KNOWN.len()],
            specials: Vec::new(),
            active: Vec::new(),
            states: Vec::new(),
            formatting: 0,
            closed: 0,
        }
    }

    /// The first limit passed, if any.
    pub(crate) fn exceeded(&self) -> Option<Exceeded> {
        self.exceeded
    }

    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.names.get(name) {
            return id;
        }
        let id = self.positions.len() as u32;
        self.names.insert(name.to_string(), id);
        self.positions.push(Vec::new());
        id
    }

    fn last(&self, id: u32) -> Option<usize> {
        self.positions[id as usize].last().copied()
    }

    /// Whether the element at stack position `pos` is in the scope bounded
    /// by `scope` (no boundary element above it).
    fn in_scope_at(&self, pos: usize, id: u32, scope: &[u32]) -> bool {
        scope
            .iter()
            .filter(|&&b| b != id)
            .filter_map(|&b| self.last(b))
            .all(|b| b < pos)
    }

    /// The stack position of the last open `id` if it is in scope.
    fn in_scope(&self, id: u32, scope: &[u32]) -> Option<usize> {
        self.last(id).filter(|&p| self.in_scope_at(p, id, scope))
    }

    fn top_is(&self, id: u32) -> bool {
        self.open.last().is_some_and(|e| e.name == id)
    }

    fn push(&mut self, name: u32, special: bool, marker: bool, entry: Option<usize>) {
        let pos = self.open.len();
        self.open.push(OpenElement {
            name,
            special,
            marker,
            entry,
        });
        self.positions[name as usize].push(pos);
        if special {
            self.specials.push(pos);
        }
        if marker {
            self.active.push(Entry::Marker);
        }
        self.elements += 1;
        self.depth = self.depth.max(self.open.len());
        self.depth_sum = self.depth_sum.saturating_add(self.open.len());
    }

    /// An element that holds nothing (`<br>`, `<img>`, a stray `</p>`).
    fn add_empty(&mut self) {
        self.elements += 1;
        self.depth = self.depth.max(self.open.len() + 1);
        self.depth_sum = self.depth_sum.saturating_add(self.open.len() + 1);
    }

    fn pop(&mut self) {
        let Some(e) = self.open.pop() else { return };
        self.positions[e.name as usize].pop();
        if e.special {
            self.specials.pop();
        }
        if let Some(id) = e.entry
            && self.states[id] == EntryState::Open
        {
            self.states[id] = EntryState::Closed;
            self.closed += 1;
        }
        if e.marker {
            while let Some(entry) = self.active.pop() {
                match entry {
                    Entry::Marker => break,
                    Entry::Formatting { id, .. } => self.forget(id),
                }
            }
        }
    }

    /// Pops up to and including stack position `pos`.
    fn pop_to(&mut self, pos: usize) {
        while self.open.len() > pos {
            self.pop();
        }
    }

    /// Marks a formatting entry taken out of the list.
    fn forget(&mut self, id: usize) {
        if self.states[id] == EntryState::Closed {
            self.closed -= 1;
        }
        self.states[id] = EntryState::Removed;
        self.formatting -= 1;
    }

    /// The list position and id of the last formatting entry named `name`
    /// after the last marker.
    fn active_entry(&self, name: u32) -> Option<(usize, usize)> {
        for (k, e) in self.active.iter().enumerate().rev() {
            match *e {
                Entry::Marker => return None,
                Entry::Formatting { id, name: n, .. } if n == name => return Some((k, id)),
                Entry::Formatting { .. } => {}
            }
        }
        None
    }

    /// Re-opens the closed formatting elements at the end of the list, as
    /// the parser does before text and most start tags.
    fn reconstruct(&mut self) {
        if self.closed == 0 {
            return;
        }
        let mut k = self.active.len();
        while k > 0 {
            match self.active[k - 1] {
                Entry::Formatting { id, .. } if self.states[id] == EntryState::Closed => k -= 1,
                _ => break,
            }
        }
        for j in k..self.active.len() {
            if let Entry::Formatting {
                id, name, bytes, ..
            } = self.active[j]
            {
                self.states[id] = EntryState::Open;
                self.closed -= 1;
                self.cloned_bytes = self.cloned_bytes.saturating_add(bytes);
                self.push(name, false, false, Some(id));
            }
        }
    }

    fn open_formatting(&mut self, name: u32, tag: &StartTag<'_>) {
        let fingerprint = fingerprint(tag);
        let mut same = 0;
        let mut earliest = None;
        for (k, e) in self.active.iter().enumerate().rev() {
            match *e {
                Entry::Marker => break,
                Entry::Formatting {
                    name: n,
                    fingerprint: f,
                    ..
                } if n == name && f == fingerprint => {
                    same += 1;
                    earliest = Some(k);
                }
                Entry::Formatting { .. } => {}
            }
        }
        if same >= 3
            && let Some(k) = earliest
            && let Entry::Formatting { id, .. } = self.active.remove(k)
        {
            self.forget(id);
        }
        let id = self.states.len();
        self.states.push(EntryState::Open);
        self.push(name, false, false, Some(id));
        self.active.push(Entry::Formatting {
            id,
            name,
            fingerprint,
            bytes: tag.attribute_bytes,
        });
        self.formatting += 1;
        self.open_formatting = self.open_formatting.max(self.formatting);
    }

    /// The end tag of a formatting element, roughly as the adoption agency
    /// runs it: the element is closed (and those opened inside it become
    /// closed-but-active, to be re-opened), and leaves the list.
    fn end_formatting(&mut self, name: u32) {
        let Some((k, id)) = self.active_entry(name) else {
            return self.end_other(name);
        };
        match self.states[id] {
            EntryState::Closed => {
                self.active.remove(k);
                self.forget(id);
            }
            EntryState::Open => {
                let pos = self.positions[name as usize]
                    .iter()
                    .rev()
                    .copied()
                    .find(|&p| self.open[p].entry == Some(id));
                let Some(pos) = pos else { return };
                if !self.in_scope_at(pos, name, DEFAULT_SCOPE) {
                    return;
                }
                self.active.remove(k);
                self.forget(id);
                self.pop_to(pos);
            }
            EntryState::Removed => {}
        }
    }

    /// "Any other end tag": closes the last open element of that name
    /// unless a special element is open inside it.
    fn end_other(&mut self, id: u32) {
        let Some(pos) = self.last(id) else { return };
        if self.specials.last().is_some_and(|&s| s > pos) {
            return;
        }
        self.pop_to(pos);
    }

    fn close_p(&mut self) {
        if let Some(pos) = self.in_scope(P, BUTTON_SCOPE) {
            self.pop_to(pos);
        }
    }

    /// `<li>`, `<dd>`, `<dt>` close an open item of `names` unless a
    /// special element other than address/div/p is open inside it.
    fn close_item(&mut self, names: &[u32]) {
        for k in (0..self.specials.len()).rev() {
            let pos = self.specials[k];
            let name = self.open[pos].name;
            if names.contains(&name) {
                return self.pop_to(pos);
            }
            if ![ADDRESS, DIV, P].contains(&name) {
                return;
            }
        }
    }

    /// Closes an open table cell (and its formatting elements).
    fn close_cell(&mut self) {
        let cell = [TD, TH].into_iter().filter_map(|c| self.last(c)).max();
        if let Some(pos) = cell
            && self.in_scope_at(pos, TD, TABLE_SCOPE)
        {
            self.pop_to(pos);
        }
    }

    fn last_of(&self, ids: &[u32]) -> Option<usize> {
        ids.iter().filter_map(|&i| self.last(i)).max()
    }

    /// Whether a table is open (table parts outside one are ignored).
    fn in_table(&self) -> bool {
        self.in_scope(TABLE, TABLE_SCOPE).is_some()
    }

    /// A start tag.
    pub(crate) fn start_tag(&mut self, tag: &StartTag<'_>) {
        if self.exceeded.is_some() {
            return;
        }
        if tag.attribute_count > MAX_ATTRIBUTES {
            self.exceeded = Some(Exceeded::Attributes);
            return;
        }
        self.start(tag);
        self.check();
    }

    fn start(&mut self, tag: &StartTag<'_>) {
        let name = tag.name;
        let foreign = self.last(SVG).is_some() || self.last(MATH).is_some();
        if foreign && tag.self_closing {
            self.add_empty();
            return;
        }
        match name {
            // Merged into the ones the parser made at the start.
            "html" | "body" | "head" | "frameset" => {}
            "a" => {
                if self.active_entry(A).is_some() {
                    self.end_formatting(A);
                }
                self.reconstruct();
                self.open_formatting(A, tag);
            }
            "nobr" => {
                self.reconstruct();
                if self.in_scope(NOBR, DEFAULT_SCOPE).is_some() {
                    self.end_formatting(NOBR);
                    self.reconstruct();
                }
                self.open_formatting(NOBR, tag);
            }
            _ if is_formatting(name) => {
                self.reconstruct();
                let id = self.id(name);
                self.open_formatting(id, tag);
            }
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.close_p();
                if self.open.last().is_some_and(|e| HEADINGS.contains(&e.name)) {
                    self.pop();
                }
                let id = self.id(name);
                self.push(id, true, false, None);
            }
            "li" => {
                self.close_item(&[LI]);
                self.close_p();
                self.push(LI, true, false, None);
            }
            "dd" | "dt" => {
                self.close_item(&[DD, DT]);
                self.close_p();
                let id = self.id(name);
                self.push(id, true, false, None);
            }
            "form" => {
                if self.last(FORM).is_none() {
                    self.close_p();
                    self.push(FORM, true, false, None);
                }
            }
            "xmp" => {
                self.close_p();
                self.reconstruct();
                let id = self.id(name);
                self.push(id, true, false, None);
            }
            _ if closes_p(name) => {
                self.close_p();
                let id = self.id(name);
                self.push(id, true, false, None);
            }
            "button" => {
                if let Some(pos) = self.in_scope(BUTTON, DEFAULT_SCOPE) {
                    self.pop_to(pos);
                }
                self.reconstruct();
                self.push(BUTTON, true, false, None);
            }
            "applet" | "marquee" | "object" => {
                self.reconstruct();
                let id = self.id(name);
                self.push(id, true, true, None);
            }
            "table" => {
                // A table straight inside a table (not in a cell) ends it.
                let cell = self.last_of(&[TD, TH, CAPTION, TEMPLATE]);
                if let Some(t) = self.last(TABLE)
                    && cell.is_none_or(|c| c < t)
                {
                    self.pop_to(t);
                }
                self.close_p();
                self.push(TABLE, true, false, None);
            }
            "caption" | "colgroup" if self.in_table() => {
                let id = self.id(name);
                self.push(id, true, name == "caption", None);
            }
            "tbody" | "thead" | "tfoot" if self.in_table() => {
                self.close_cell();
                self.close_table_part(&[TR]);
                self.close_table_part(&[TBODY, THEAD, TFOOT]);
                let id = self.id(name);
                self.push(id, true, false, None);
            }
            "tr" if self.in_table() => {
                self.close_cell();
                self.close_table_part(&[TR]);
                self.imply_section();
                self.push(TR, true, false, None);
            }
            "td" | "th" if self.in_table() => {
                self.close_cell();
                let table = self.last(TABLE).unwrap_or(0);
                if self.last(TR).is_none_or(|r| r < table) {
                    self.imply_section();
                    self.push(TR, true, false, None);
                }
                let id = self.id(name);
                self.push(id, true, true, None);
            }
            // Table parts outside a table are ignored.
            "caption" | "colgroup" | "tbody" | "thead" | "tfoot" | "tr" | "td" | "th" => {}
            "option" => {
                if self.top_is(OPTION) {
                    self.pop();
                }
                self.reconstruct();
                self.push(OPTION, false, false, None);
            }
            "optgroup" => {
                if self.top_is(OPTION) {
                    self.pop();
                }
                if self.top_is(OPTGROUP) {
                    self.pop();
                }
                self.reconstruct();
                self.push(OPTGROUP, false, false, None);
            }
            "hr" => {
                self.close_p();
                self.add_empty();
            }
            "area" | "br" | "embed" | "img" | "image" | "keygen" | "wbr" | "input" => {
                self.reconstruct();
                self.add_empty();
            }
            "base" | "basefont" | "bgsound" | "link" | "meta" | "param" | "source" | "track"
            | "col" | "frame" => self.add_empty(),
            "template" => {
                self.push(TEMPLATE, true, true, None);
            }
            "script" | "style" | "title" | "noscript" | "noframes" | "noembed" | "iframe"
            | "textarea" => {
                let id = self.id(name);
                self.push(id, true, false, None);
            }
            "svg" | "math" if tag.self_closing => {
                self.reconstruct();
                self.add_empty();
            }
            _ => {
                self.reconstruct();
                let id = self.id(name);
                self.push(id, is_special(name), false, None);
            }
        }
    }

    /// Closes the innermost of `parts` if it is open in the current table.
    fn close_table_part(&mut self, parts: &[u32]) {
        if let Some(pos) = self.last_of(parts)
            && self.in_scope_at(pos, parts[0], TABLE_SCOPE)
        {
            self.pop_to(pos);
        }
    }

    /// A row straight in a table gets an implied `<tbody>`.
    fn imply_section(&mut self) {
        let table = self.last(TABLE).unwrap_or(0);
        if self
            .last_of(&[TBODY, THEAD, TFOOT])
            .is_none_or(|s| s < table)
        {
            self.push(TBODY, true, false, None);
        }
    }

    /// An end tag.
    pub(crate) fn end_tag(&mut self, name: &str, attribute_count: usize) {
        if self.exceeded.is_some() {
            return;
        }
        if attribute_count > MAX_ATTRIBUTES {
            self.exceeded = Some(Exceeded::Attributes);
            return;
        }
        self.end(name);
        self.check();
    }

    fn end(&mut self, name: &str) {
        match name {
            "p" => match self.in_scope(P, BUTTON_SCOPE) {
                Some(pos) => self.pop_to(pos),
                // A stray </p> makes an empty paragraph.
                None => self.add_empty(),
            },
            // A stray </br> is a <br>.
            "br" => {
                self.reconstruct();
                self.add_empty();
            }
            "html" | "body" | "head" => {}
            "li" => {
                if let Some(pos) = self.in_scope(LI, LIST_ITEM_SCOPE) {
                    self.pop_to(pos);
                }
            }
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                if let Some(pos) = self.last_of(&HEADINGS)
                    && self.in_scope_at(pos, HEADINGS[0], DEFAULT_SCOPE)
                {
                    self.pop_to(pos);
                }
            }
            _ if is_formatting(name) => {
                let id = self.id(name);
                self.end_formatting(id);
            }
            "table" | "tbody" | "thead" | "tfoot" | "tr" | "td" | "th" | "caption" | "colgroup" => {
                let id = self.id(name);
                if let Some(pos) = self.in_scope(id, TABLE_SCOPE) {
                    self.pop_to(pos);
                }
            }
            _ if closes_p(name)
                || matches!(
                    name,
                    "dd" | "dt"
                        | "button"
                        | "applet"
                        | "marquee"
                        | "object"
                        | "form"
                        | "template"
                        | "select"
                ) =>
            {
                let id = self.id(name);
                if let Some(pos) = self.in_scope(id, DEFAULT_SCOPE) {
                    self.pop_to(pos);
                }
            }
            _ => {
                let id = self.id(name);
                self.end_other(id);
            }
        }
    }

    /// Text of the page (not of a raw-text element).
    pub(crate) fn text(&mut self, text: &str) {
        if self.exceeded.is_some() || text.is_empty() {
            return;
        }
        let blank = text
            .bytes()
            .all(|b| matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' '));
        // Spaces between table parts, or before anything, are dropped.
        let in_table_part = self
            .open
            .last()
            .is_some_and(|e| [TABLE, TBODY, THEAD, TFOOT, TR].contains(&e.name));
        if blank && (in_table_part || self.open.is_empty()) {
            return;
        }
        self.reconstruct();
        self.check();
    }

    fn check(&mut self) {
        if self.exceeded.is_some() {
            return;
        }
        self.exceeded = if self.depth > self.max_depth {
            Some(Exceeded::Depth)
        } else if self.elements > self.max_elements {
            Some(Exceeded::Elements)
        } else if self.depth_sum > self.max_depth_sum {
            Some(Exceeded::DepthSum)
        } else if self.open_formatting > self.max_formatting {
            Some(Exceeded::OpenFormatting)
        } else if self.cloned_bytes > MAX_CLONED_ATTRIBUTE_BYTES {
            Some(Exceeded::ClonedAttributes)
        } else {
            None
        };
        if self.exceeded.is_some() {
            // The measure is over; free what it held.
            *self = Self {
                names: HashMap::new(),
                open: Vec::new(),
                positions: Vec::new(),
                specials: Vec::new(),
                active: Vec::new(),
                states: Vec::new(),
                ..*self
            };
        }
    }
}

/// A hash of a tag's attributes, in any order.
fn fingerprint(tag: &StartTag<'_>) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut pairs: Vec<(String, &str)> = tag
        .attributes
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), *v))
        .collect();
    pairs.sort();
    pairs.dedup_by(|a, b| a.0 == b.0);
    let mut h = DefaultHasher::new();
    pairs.hash(&mut h);
    tag.attribute_count.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::super::tokenize::{RawText, Sink, tokenize};
    use super::*;

    impl Sink for Shape {
        fn start_tag(&mut self, tag: &StartTag<'_>) {
            Shape::start_tag(self, tag);
        }
        fn end_tag(&mut self, name: &str, attribute_count: usize) {
            Shape::end_tag(self, name, attribute_count);
        }
        fn text(&mut self, text: &str) {
            Shape::text(self, text);
        }
        fn raw_text(&mut self, _: &str, _: RawText) {}
    }

    fn unlimited() -> CleanLimits {
        CleanLimits {
            max_html_depth: usize::MAX,
            max_html_elements: usize::MAX,
            max_html_open_formatting: usize::MAX,
            max_html_depth_sum: usize::MAX,
            ..CleanLimits::default()
        }
    }

    /// (depth, elements, most open formatting elements) of `html`.
    fn measure(html: &str) -> (usize, usize, usize) {
        let mut s = Shape::new(&unlimited());
        tokenize(html, &mut s);
        (s.depth, s.elements, s.open_formatting)
    }

    #[test]
    fn known_names_have_their_ids() {
        let ids = [
            (HTML, "html"),
            (TABLE, "table"),
            (TEMPLATE, "template"),
            (TD, "td"),
            (TH, "th"),
            (CAPTION, "caption"),
            (MARQUEE, "marquee"),
            (OBJECT, "object"),
            (APPLET, "applet"),
            (BUTTON, "button"),
            (OL, "ol"),
            (UL, "ul"),
            (P, "p"),
            (LI, "li"),
            (DD, "dd"),
            (DT, "dt"),
            (TR, "tr"),
            (TBODY, "tbody"),
            (THEAD, "thead"),
            (TFOOT, "tfoot"),
            (FORM, "form"),
            (A, "a"),
            (NOBR, "nobr"),
            (OPTION, "option"),
            (OPTGROUP, "optgroup"),
            (SVG, "svg"),
            (MATH, "math"),
            (DIV, "div"),
            (ADDRESS, "address"),
        ];
        for (id, name) in ids {
            assert_eq!(KNOWN[id as usize], name);
        }
        for (k, h) in HEADINGS.iter().enumerate() {
            assert_eq!(KNOWN[*h as usize], format!("h{}", k + 1));
        }
    }

    #[test]
    fn implied_end_tags_keep_sloppy_pages_shallow() {
        // (page, depth, elements) as html5ever builds them (under <body>).
        let check = |html: &str, depth: usize, elements: usize| {
            let (d, e, _) = measure(html);
            assert_eq!((d, e), (depth, elements), "{html}");
        };
        check(&"<p>x".repeat(1000), 1, 1000);
        check(&format!("<ul>{}</ul>", "<li>x".repeat(1000)), 2, 1001);
        check(&format!("<dl>{}</dl>", "<dt>a<dd>b".repeat(50)), 2, 101);
        check(
            &format!("<table>{}</table>", "<tr><td>a<td>b".repeat(100)),
            4,
            302,
        );
        check("<table><td>x</table>", 4, 4);
        check("<h1>a<h2>b</h2>", 1, 2);
        check("<div><span>a</div>b</span>", 2, 2);
        check("<p>a</p></p>", 1, 2);
        check("<select><option>a<option>b</select>", 2, 3);
        check(&"<br><img src=x>".repeat(10), 1, 20);
        check("<svg><path d=\"x\"/><g><circle/></g></svg>", 3, 4);
        // An unquoted value takes the slash: this <path> is not self-closing.
        check("<svg><path d=x/><g></g></svg>", 3, 3);
    }

    #[test]
    fn deep_nesting_is_measured() {
        let check = |html: String, depth: usize| assert_eq!(measure(&html).0, depth);
        check(
            format!("{}x{}", "<div>".repeat(500), "</div>".repeat(500)),
            500,
        );
        check("<table><tr><td>".repeat(100), 400);
        check("<span>".repeat(300), 300);
        // Unclosed identical <b>s nest, though only three stay active.
        let (d, _, f) = measure(&"<b>x".repeat(200));
        assert_eq!((d, f), (200, 3));
    }

    #[test]
    fn unclosed_formatting_is_reopened_in_every_paragraph() {
        // Distinct attributes defeat the parser's three-copies rule.
        let tags: String = (0..10).map(|i| format!("<b class=c{i}>")).collect();
        let html = format!("<p>{tags}{}", "<p>x".repeat(100));
        let (depth, elements, formatting) = measure(&html);
        assert_eq!(formatting, 10);
        assert_eq!(elements, 1 + 10 + 100 * 11);
        assert_eq!(depth, 11);
        // Closed formatting is not re-opened.
        let html = format!("<p><b>a</b>{}", "<p>x".repeat(100));
        assert_eq!(measure(&html).1, 102);
        // A table cell ends the formatting opened in it.
        let html = format!(
            "<table>{}</table><p>x",
            "<tr><td><b class=a><i>x".repeat(50)
        );
        let (_, elements, formatting) = measure(&html);
        assert_eq!(formatting, 2);
        assert_eq!(elements, 1 + 1 + 50 * 4 + 1);
    }

    #[test]
    fn the_first_limit_passed_stops_the_measure() {
        let limits = CleanLimits {
            max_html_depth: 10,
            max_html_elements: 100,
            max_html_open_formatting: 5,
            max_html_depth_sum: 200,
            ..CleanLimits::default()
        };
        let check = |html: &str, expected: Option<Exceeded>| {
            let mut s = Shape::new(&limits);
            tokenize(html, &mut s);
            assert_eq!(s.exceeded(), expected, "{html}");
        };
        check(&"<div>".repeat(10), None);
        check(&"<div>".repeat(11), Some(Exceeded::Depth));
        check(&"<p>x".repeat(100), None);
        check(&"<p>x".repeat(101), Some(Exceeded::Elements));
        // A closed chain of five adds 1 + 2 + 3 + 4 + 5 = 15 to the depth sum.
        check(
            &"<div><div><div><div><div></div></div></div></div></div>".repeat(13),
            None,
        );
        check(
            &"<div><div><div><div><div></div></div></div></div></div>".repeat(14),
            Some(Exceeded::DepthSum),
        );
        check("<b><i><u><s><em>", None);
        check("<b><i><u><s><em></em></s></u></i></b><b>", None);
        check("<b><i><u><s><em><tt>", Some(Exceeded::OpenFormatting));
        let many: String = (0..=MAX_ATTRIBUTES).map(|i| format!(" a{i}")).collect();
        check(&format!("<div{many}>"), Some(Exceeded::Attributes));
        check(&format!("</div{many}>"), Some(Exceeded::Attributes));
        // Eight clones of a 3 MB class: four times past the limit.
        let class = "z".repeat(3 << 20);
        let clones = format!("<p><b class={class}>{}", "<p>x".repeat(8));
        let limits = CleanLimits::default();
        let mut s = Shape::new(&limits);
        tokenize(&clones, &mut s);
        assert_eq!(s.exceeded(), Some(Exceeded::ClonedAttributes));
    }
}
