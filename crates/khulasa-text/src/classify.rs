//! Deciding, block by block, what is the main story and why the rest is not.
//!
//! The main story starts at its title (the headline just before the first
//! paragraph of prose) or, without one, at that paragraph; what comes before
//! is navigation. From there a small state machine walks the page: "read
//! also" with a headline on the same line is an inline insert, a bare "read
//! also" opens an appended story, source and tag lines close the story, and
//! related lists, comments, previous/next links and footers are recognised
//! by their cues and shapes.

use crate::Reason;
use crate::blocks::Block;
use crate::cues::Cue;

/// What a block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Title,
    Body,
    Removed(Reason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Inside the main story.
    Story,
    /// The story is over (after its source or tags); what follows is not it.
    After,
    /// An appended story after a bare "read also".
    Appended,
    /// A list of related headlines.
    Related,
    /// The comments area: everything up to the footer.
    Comments,
    /// Just after "previous"/"next": the next headline is a link.
    PrevNext,
}

/// Assigns a role to every block.
pub(crate) fn classify(blocks: &[Block]) -> Vec<Role> {
    let mut roles = vec![Role::Removed(Reason::Other); blocks.len()];
    let Some(first) = first_story_block(blocks) else {
        for (role, b) in roles.iter_mut().zip(blocks) {
            *role = Role::Removed(furniture(b).unwrap_or(Reason::Navigation));
        }
        return roles;
    };
    let title = find_title(blocks, first);
    let start = title.unwrap_or(first);
    for (role, b) in roles.iter_mut().zip(&blocks[..start]) {
        *role = Role::Removed(furniture(b).unwrap_or(Reason::Navigation));
    }
    if let Some(t) = title {
        roles[t] = Role::Title;
    }
    let title_key = title.map(|t| blocks[t].key.as_str());

    let mut state = State::Story;
    let mut i = title.map_or(first, |t| t + 1);
    while i < blocks.len() {
        let b = &blocks[i];
        let (role, next) = step(state, b, title_key, blocks.get(i + 1));
        // A run of list items inside the story is a related list, not prose.
        if state == State::Story && role == Role::Body && is_list_item(b) {
            let run = blocks[i..].iter().take_while(|b| is_list_item(b)).count();
            if run >= 3 {
                for r in &mut roles[i..i + run] {
                    *r = Role::Removed(Reason::RelatedList);
                }
                i += run;
                continue;
            }
        }
        roles[i] = role;
        state = next;
        i += 1;
    }
    roles
}

/// One step of the walk: the role of `b` in `state`, and the next state.
fn step(state: State, b: &Block, title_key: Option<&str>, next: Option<&Block>) -> (Role, State) {
    use Reason::*;
    let removed = |r| Role::Removed(r);
    // Furniture that means the same wherever it appears.
    if b.dateish && b.cue.is_none() {
        return (removed(Other), state);
    }
    if b.menu_row && b.cue.is_none() {
        return (removed(Navigation), state);
    }
    match b.cue {
        Some((Cue::Media, _)) => return (removed(MediaRemnant), state),
        Some((Cue::Footer | Cue::Cookie, _)) => {
            let next_state = if state == State::Comments {
                State::After
            } else {
                state
            };
            return (removed(Footer), next_state);
        }
        _ => {}
    }
    // The headline under "previous"/"next" is a link, even if it is this story's.
    if state == State::PrevNext && b.cue.is_none() {
        return (removed(Navigation), State::After);
    }
    if title_key.is_some_and(|t| t == b.key) {
        return (removed(DuplicateTitle), state);
    }
    if state == State::Comments {
        // Site widgets after the comments ("Follow us") end them.
        return match b.cue {
            Some((Cue::Share | Cue::Menu, _)) => (removed(Navigation), State::After),
            _ => (removed(Comments), state),
        };
    }
    match b.cue {
        Some((Cue::ReadAlso, true)) if state == State::Story => return (removed(ReadAlso), state),
        Some((Cue::ReadAlso, true)) => return (removed(ReadAlso), State::Appended),
        // A bare "read also" followed by a list is a related list.
        Some((Cue::ReadAlso, false)) if next.is_some_and(is_list_item) => {
            return (removed(ReadAlso), State::Related);
        }
        Some((Cue::ReadAlso, false)) => return (removed(ReadAlso), State::Appended),
        Some((Cue::Related, _)) => return (removed(RelatedList), State::Related),
        Some((Cue::Comments, _)) => return (removed(Comments), State::Comments),
        Some((Cue::PrevNext, _)) => return (removed(Navigation), State::PrevNext),
        Some((Cue::Source, _)) => return (removed(SourceCredit), State::After),
        Some((Cue::Tags, _)) => return (removed(Tags), State::After),
        Some((Cue::Date | Cue::Stray, _)) => return (removed(Other), state),
        Some((Cue::Share | Cue::Menu, _)) => return (removed(Navigation), state),
        _ => {}
    }
    match state {
        State::Story => (Role::Body, State::Story),
        State::Appended => (removed(AppendedStory), State::Appended),
        State::Related if b.bullet || !b.is_prose() => (removed(RelatedList), State::Related),
        State::Related | State::After if b.is_prose() => (removed(AppendedStory), State::Appended),
        State::Related | State::After => (removed(Other), State::After),
        State::PrevNext => (removed(Navigation), State::After),
        State::Comments => unreachable!("handled above"),
    }
}

/// The reason a block is furniture by its cue alone, if it is.
fn furniture(b: &Block) -> Option<Reason> {
    use Reason::*;
    if b.dateish && b.cue.is_none() {
        return Some(Other);
    }
    if b.menu_row && b.cue.is_none() {
        return Some(Navigation);
    }
    Some(match b.cue? {
        (Cue::Media, _) => MediaRemnant,
        (Cue::Footer | Cue::Cookie, _) => Footer,
        (Cue::ReadAlso, _) => ReadAlso,
        (Cue::Related, _) => RelatedList,
        (Cue::Comments, _) => Comments,
        (Cue::Source, _) => SourceCredit,
        (Cue::Tags, _) => Tags,
        (Cue::Date | Cue::Stray, _) => Other,
        (Cue::PrevNext | Cue::Share | Cue::Menu, _) => Navigation,
    })
}

fn is_list_item(b: &Block) -> bool {
    b.listish && !b.is_prose()
}

/// The first block of running prose that is not furniture: where the story's
/// body begins. Without any, the longest plain block stands for the story.
fn first_story_block(blocks: &[Block]) -> Option<usize> {
    let prose_at = |i: usize| {
        let b: &Block = &blocks[i];
        furniture(b).is_none() && b.is_prose() && !b.listish
    };
    let first = (0..blocks.len()).find(|&i| prose_at(i)).map(|i| {
        // A long headline reads like prose; it is the title when it does not
        // end like a sentence and prose follows it (past dates and buttons).
        let b = &blocks[i];
        let headline_shaped = !b.terminal && b.words <= 25;
        let next = (i + 1..blocks.len()).find(|&j| furniture(&blocks[j]).is_none());
        match next {
            Some(j) if headline_shaped && prose_at(j) => j,
            _ => i,
        }
    });
    first
        .or_else(|| {
            blocks
                .iter()
                .position(|b| furniture(b).is_none() && b.is_prose())
        })
        .or_else(|| {
            let plain = |b: &Block| furniture(b).is_none() && b.words > 0;
            let best = blocks.iter().filter(|b| plain(b)).map(|b| b.words).max()?;
            blocks.iter().position(|b| plain(b) && b.words == best)
        })
}

/// The title: the headline just before the first paragraph, looking back
/// over date lines and duplicates. When the headline is repeated, the first
/// copy is the title.
fn find_title(blocks: &[Block], first: usize) -> Option<usize> {
    let mut i = first;
    let mut looked = 0;
    while i > 0 && looked < 4 {
        i -= 1;
        let b = &blocks[i];
        match furniture(b) {
            Some(Reason::Other | Reason::MediaRemnant) => continue,
            Some(Reason::Navigation) if b.cue.is_some_and(|(c, _)| c == Cue::Share) => continue,
            Some(_) => return None,
            None => {}
        }
        looked += 1;
        if b.is_headline() || (!b.terminal && !b.listish && b.words <= 25) {
            // The same headline just above (with only dates between) is the
            // first copy.
            let mut title = i;
            let mut j = i;
            while j > 0 {
                j -= 1;
                let above = &blocks[j];
                if above.key == b.key {
                    title = j;
                } else if furniture(above) != Some(Reason::Other) {
                    break;
                }
            }
            return Some(title);
        }
        if b.is_prose() || b.listish {
            return None;
        }
    }
    None
}
