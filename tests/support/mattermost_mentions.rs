//! A port, for tests, of how the Mattermost server decides whom a post mentions: the text that
//! `markdown.Inspect` hands over (server/public/shared/markdown; 5.37: shared/markdown) and
//! `StandardMentionParser.ProcessText` with `checkForMention` and `isKeywordMultibyte`
//! (server/channels/app/mention_parser_standard.go; 5.37: `processText` in app/notification.go,
//! the same rule). docs/decisions.md ("Mentions and Markdown from visitors") has the rule in
//! words and the versions read.
//!
//! `ProcessText` is ported line by line. The Markdown side ports what decides which characters
//! end up next to each other in one scanned buffer: paragraphs (code blocks are not scanned),
//! line endings, backslash escapes, character references, code spans and inline links (their
//! text is scanned, destination and title are not), each non-text node ending the buffer.
//! Where it is simpler it errs towards finding more mentions, never fewer:
//! - autolinks (`www.…`, `https://…`) and emoji (`:name:`) are read as plain text. Mattermost
//!   gives them their own node, which ends the buffer before and after; an autolink runs to
//!   the next whitespace (an `@` can end one, so none ends right before an `@`) and an emoji
//!   ends with `:`, which splits words anyway, so the words around them stay the same;
//! - only a few named character references are known (`&commat;` among them); an unknown one
//!   stays `&name;`, whose `&` and `;` split words, where Mattermost would join its character
//!   to its neighbours: for a name starting with `@` that can only hide a mention, not make one;
//! - reference links (`[a][b]`) and HTML are plain text, as in Mattermost's parser.
//!
//! Included with `#[path]` by the unit tests (src/domain/markdown.rs) and the API tests.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// Who is registered to be mentioned by which keyword (Mattermost's `MentionKeywords`).
pub enum Keywords {
    /// Everyone: `@channel`, `@all`, `@here`, and a user or group behind every `@name` a
    /// username can be (`[a-z0-9._-]+`; Mattermost's usernames and group names are ASCII).
    Anyone,
    /// Exactly these keywords (lower case, or a first name as written), each with the ids it
    /// mentions, as in Mattermost's own tests.
    Exactly(BTreeMap<String, Vec<String>>),
}

impl Keywords {
    pub fn exactly(pairs: &[(&str, &[&str])]) -> Self {
        Self::Exactly(
            pairs
                .iter()
                .map(|(k, ids)| {
                    (
                        (*k).to_owned(),
                        ids.iter().map(|s| (*s).to_owned()).collect(),
                    )
                })
                .collect(),
        )
    }

    fn get(&self, word: &str) -> Option<Vec<String>> {
        match self {
            Self::Anyone => {
                let name = word.strip_prefix('@')?;
                let is_name = !name.is_empty()
                    && name.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                    });
                is_name.then(|| vec![word.to_owned()])
            }
            Self::Exactly(map) => map.get(word).cloned(),
        }
    }

    fn multibyte(&self) -> Vec<(&str, &[String])> {
        match self {
            Self::Anyone => Vec::new(),
            Self::Exactly(map) => map
                .iter()
                .filter(|(k, _)| !k.is_ascii())
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect(),
        }
    }
}

/// What Mattermost found (`MentionResults`, without the mention types).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Mentions {
    /// Ids (for `Keywords::Anyone`: the keywords) that were mentioned.
    pub ids: BTreeSet<String>,
    pub here: bool,
    pub channel: bool,
    pub all: bool,
    /// Words that looked like `@name` for someone not in the channel (Mattermost then tells
    /// the poster, or offers to invite them).
    pub other_potential: Vec<String>,
}

impl Mentions {
    /// Whether anyone is notified: a user, a group, or the whole channel.
    pub fn any(&self) -> bool {
        !self.ids.is_empty() || self.here || self.channel || self.all
    }

    /// Whether anything at all was found, including names that only looked like mentions.
    pub fn anything(&self) -> bool {
        self.any() || self.other_potential.iter().any(|n| !n.is_empty())
    }
}

/// Whom `post` (a message, or an attachment's `pretext`, `text` or field value) mentions.
pub fn mentions(post: &str, keywords: &Keywords) -> Mentions {
    let mut parser = Parser {
        keywords,
        found: Mentions::default(),
    };
    for buffer in scanned_buffers(post) {
        parser.process_text(&buffer);
    }
    parser.found
}

/// The text Mattermost shows a reader: the scanned buffers, joined by spaces (for checking
/// that escaped text still reads as written).
pub fn visible_text(post: &str) -> String {
    scanned_buffers(post).join(" ")
}

// ----- ProcessText ---------------------------------------------------------------------------

struct Parser<'k> {
    keywords: &'k Keywords,
    found: Mentions,
}

const SYSTEM_MENTIONS: [&str; 3] = ["@here", "@channel", "@all"];

/// Go's `unicode.IsLetter` (category L) and `unicode.IsNumber` (category N).
fn is_letter(c: char) -> bool {
    c.general_category_group() == GeneralCategoryGroup::Letter
}

fn is_number(c: char) -> bool {
    c.general_category_group() == GeneralCategoryGroup::Number
}

/// Go's `strings.ToLower`: the simple (one-to-one) lower-case mapping of each character.
fn go_lower(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == '\u{130}' {
                return 'i';
            }
            let mut lower = c.to_lowercase();
            match (lower.next(), lower.next()) {
                (Some(l), None) => l,
                _ => c,
            }
        })
        .collect()
}

impl Parser<'_> {
    fn process_text(&mut self, text: &str) {
        // Split on any whitespace or punctuation that can't be part of an at mention or emoji.
        let words = text
            .split(|c: char| {
                !(matches!(c, ':' | '.' | '-' | '_' | '@') || is_letter(c) || is_number(c))
            })
            .filter(|w| !w.is_empty());
        for word in words {
            // `:word:` is taken for an emoji.
            if word.starts_with(':') && word.ends_with(':') {
                continue;
            }
            let word = word.trim_start_matches([':', '.', '-', '_']);
            if self.check_for_mention(word) {
                continue;
            }
            let mut without_suffix = word;
            let mut found_without_suffix = false;
            while !without_suffix.is_empty() && without_suffix.ends_with(['.', '-', ':', '_']) {
                without_suffix = &without_suffix[..without_suffix.len() - 1];
                if self.check_for_mention(without_suffix) {
                    found_without_suffix = true;
                    break;
                }
            }
            if found_without_suffix {
                continue;
            }
            if !SYSTEM_MENTIONS.contains(&word) && word.starts_with('@') {
                let word = word.strip_suffix(['.', '-', ':']).unwrap_or(word);
                self.found.other_potential.push(word[1..].to_owned());
            } else if word.contains(['.', '-', ':']) {
                for split in word.split(['.', '-', ':']).filter(|w| !w.is_empty()) {
                    if self.check_for_mention(split) {
                        continue;
                    }
                    if !SYSTEM_MENTIONS.contains(&split) && split.starts_with('@') {
                        self.found.other_potential.push(split[1..].to_owned());
                    }
                }
            }
            // isKeywordMultibyte: a word with a non-ASCII character mentions every non-ASCII
            // keyword it contains (Mattermost keeps an arbitrary one of them; all is safer).
            if !word.is_ascii() {
                for (keyword, ids) in self.keywords.multibyte() {
                    if word.contains(keyword) {
                        self.found.ids.extend(ids.iter().cloned());
                    }
                }
            }
        }
    }

    fn check_for_mention(&mut self, word: &str) -> bool {
        let lower = go_lower(word);
        match lower.as_str() {
            "@here" => self.found.here = true,
            "@channel" => self.found.channel = true,
            "@all" => self.found.all = true,
            _ => {}
        }
        if let Some(ids) = self.keywords.get(&lower) {
            self.found.ids.extend(ids);
            return true;
        }
        // Case-sensitive check for a first name.
        if let Some(ids) = self.keywords.get(word) {
            self.found.ids.extend(ids);
            return true;
        }
        false
    }
}

// ----- the Markdown that runs first -----------------------------------------------------------

/// The buffers `ProcessText` is called with: runs of adjacent text, cut at every other node.
fn scanned_buffers(post: &str) -> Vec<String> {
    let mut out = Vec::new();
    for paragraph in paragraphs(post) {
        let mut inline = Inline {
            raw: paragraph.chars().collect(),
            pos: 0,
            buffer: String::new(),
            out: &mut out,
        };
        inline.parse();
    }
    out.retain(|b| !b.is_empty());
    out
}

/// The paragraphs of a post, each as its lines joined by `\n`: what is left after code blocks
/// (fenced, or indented by four columns where no paragraph goes on) and blank lines, with
/// block-quote markers and leading spaces taken off.
fn paragraphs(post: &str) -> Vec<String> {
    let mut paragraphs = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut fence: Option<(char, usize)> = None;
    let normalised = post.replace("\r\n", "\n").replace('\r', "\n");
    for line in normalised.split('\n') {
        let mut line = line;
        // Block-quote markers (each may be followed by one space).
        loop {
            let trimmed = strip_up_to_three_spaces(line);
            match trimmed.strip_prefix('>') {
                Some(rest) => line = rest.strip_prefix(' ').unwrap_or(rest),
                None => break,
            }
        }
        if let Some((c, n)) = fence {
            let t = strip_up_to_three_spaces(line);
            let run = t.chars().take_while(|&x| x == c).count();
            if run >= n && t[run * c.len_utf8()..].trim().is_empty() {
                fence = None;
            }
            continue;
        }
        let t = strip_up_to_three_spaces(line);
        let opener = t.chars().next().filter(|c| matches!(c, '`' | '~'));
        if let Some(c) = opener {
            let run = t.chars().take_while(|&x| x == c).count();
            if run >= 3 && (c == '~' || !t[run..].contains('`')) {
                flush_paragraph(&mut current, &mut paragraphs);
                fence = Some((c, run));
                continue;
            }
        }
        if line.trim().is_empty() {
            flush_paragraph(&mut current, &mut paragraphs);
            continue;
        }
        if current.is_empty() && indentation(line) >= 4 {
            continue; // an indented code block
        }
        current.push(line.trim_start().to_owned());
    }
    flush_paragraph(&mut current, &mut paragraphs);
    paragraphs
}

fn flush_paragraph(current: &mut Vec<String>, paragraphs: &mut Vec<String>) {
    if !current.is_empty() {
        paragraphs.push(current.join("\n"));
        current.clear();
    }
}

fn strip_up_to_three_spaces(line: &str) -> &str {
    let n = line.bytes().take(3).take_while(|&b| b == b' ').count();
    &line[n..]
}

fn indentation(line: &str) -> usize {
    let mut columns = 0;
    for c in line.chars() {
        match c {
            ' ' => columns += 1,
            '\t' => columns += 4 - columns % 4,
            _ => break,
        }
    }
    columns
}

struct Inline<'o> {
    raw: Vec<char>,
    pos: usize,
    buffer: String,
    out: &'o mut Vec<String>,
}

impl Inline<'_> {
    /// A node that is not text: what was gathered so far is scanned on its own.
    fn node(&mut self) {
        self.out.push(std::mem::take(&mut self.buffer));
    }

    fn peek(&self, at: usize) -> Option<char> {
        self.raw.get(at).copied()
    }

    fn parse(&mut self) {
        while self.pos < self.raw.len() {
            let c = self.raw[self.pos];
            match c {
                '\n' => {
                    self.node(); // a line break
                    self.pos += 1;
                }
                '\\' => match self.peek(self.pos + 1) {
                    Some(n) if n.is_ascii_punctuation() => {
                        self.buffer.push(n);
                        self.pos += 2;
                    }
                    _ => {
                        self.buffer.push('\\');
                        self.pos += 1;
                    }
                },
                '`' => self.backticks(),
                '&' => self.character_reference(),
                '[' => {
                    if !self.link(self.pos) {
                        self.buffer.push('[');
                        self.pos += 1;
                    }
                }
                '!' if self.peek(self.pos + 1) == Some('[') => {
                    if !self.link(self.pos + 1) {
                        self.buffer.push_str("![");
                        self.pos += 2;
                    }
                }
                _ => {
                    self.buffer.push(c);
                    self.pos += 1;
                }
            }
        }
        self.node();
    }

    /// A code span (not scanned) when a run of the same length closes it, else the backticks
    /// as text.
    fn backticks(&mut self) {
        let count = self.raw[self.pos..]
            .iter()
            .take_while(|&&c| c == '`')
            .count();
        let mut search = self.pos + count;
        while search < self.raw.len() {
            if self.raw[search] != '`' {
                search += 1;
                continue;
            }
            let run = self.raw[search..].iter().take_while(|&&c| c == '`').count();
            if run == count {
                self.node();
                self.pos = search + run;
                return;
            }
            search += run;
        }
        self.buffer.extend(std::iter::repeat_n('`', count));
        self.pos += count;
    }

    /// `&…;` decoded when Mattermost knows it, else a lone `&`.
    fn character_reference(&mut self) {
        let rest: String = self.raw[self.pos + 1..].iter().collect();
        if let Some(semicolon) = rest.find(';')
            && let Some(decoded) = character_reference(&rest[..semicolon])
        {
            self.buffer.push_str(&decoded);
            self.pos += 1 + rest[..semicolon].chars().count() + 1;
            return;
        }
        self.buffer.push('&');
        self.pos += 1;
    }

    /// An inline link or image whose `[` is at `open`: its text is scanned as a node of its
    /// own, the destination and title are not. False when there is none.
    fn link(&mut self, open: usize) -> bool {
        let Some(close) = self.matching_bracket(open) else {
            return false;
        };
        let Some(end) = self.destination_and_title(close + 1) else {
            return false;
        };
        self.node();
        let text: String = self.raw[open + 1..close].iter().collect();
        let mut inner = Inline {
            raw: text.chars().collect(),
            pos: 0,
            buffer: String::new(),
            out: self.out,
        };
        inner.parse();
        self.pos = end;
        true
    }

    fn matching_bracket(&self, open: usize) -> Option<usize> {
        let mut depth = 0;
        let mut i = open + 1;
        while i < self.raw.len() {
            match self.raw[i] {
                '\\' => i += 1,
                '[' => depth += 1,
                ']' if depth == 0 => return Some(i),
                ']' => depth -= 1,
                _ => {}
            }
            i += 1;
        }
        None
    }

    /// `(destination "title")` starting at `at`; returns the position after `)`.
    fn destination_and_title(&self, at: usize) -> Option<usize> {
        if self.peek(at) != Some('(') {
            return None;
        }
        let skip_space = |mut i: usize| {
            while self.peek(i).is_some_and(char::is_whitespace) {
                i += 1;
            }
            i
        };
        let mut i = skip_space(at + 1);
        if self.peek(i) == Some('<') {
            i += 1;
            loop {
                match self.peek(i)? {
                    '>' => break,
                    '\n' | '<' => return None,
                    '\\' => i += 2,
                    _ => i += 1,
                }
            }
            i += 1;
        } else {
            let mut depth = 0usize;
            while let Some(c) = self.peek(i) {
                match c {
                    c if c.is_whitespace() || c.is_control() => break,
                    '\\' => i += 1,
                    '(' => depth += 1,
                    ')' if depth == 0 => break,
                    ')' => depth -= 1,
                    _ => {}
                }
                i += 1;
            }
        }
        let before_title = i;
        i = skip_space(i);
        if i > before_title
            && let Some(quote) = self.peek(i).filter(|c| matches!(c, '"' | '\'' | '('))
        {
            let closing = if quote == '(' { ')' } else { quote };
            i += 1;
            loop {
                match self.peek(i)? {
                    '\\' => i += 2,
                    c if c == closing => break,
                    _ => i += 1,
                }
            }
            i = skip_space(i + 1);
        }
        (self.peek(i) == Some(')')).then_some(i + 1)
    }
}

/// Mattermost's `CharacterReference`: numeric references in full, named ones from a short
/// list (see the module comment for why that errs the safe way).
fn character_reference(reference: &str) -> Option<String> {
    if let Some(number) = reference.strip_prefix('#') {
        let (digits, radix, max) = match number.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16, 8),
            None => (number, 10, 8),
        };
        if digits.is_empty() || digits.len() > max || !digits.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        let n = u32::from_str_radix(digits, radix).ok()?;
        return Some(
            char::from_u32(n)
                .filter(|&c| c != '\0')
                .unwrap_or(char::REPLACEMENT_CHARACTER)
                .to_string(),
        );
    }
    let c = match reference {
        "commat" => '@',
        "amp" | "AMP" => '&',
        "lt" | "LT" => '<',
        "gt" | "GT" => '>',
        "quot" | "QUOT" => '"',
        "apos" => '\'',
        "nbsp" => '\u{A0}',
        "period" => '.',
        "colon" => ':',
        "hyphen" | "dash" => '\u{2010}',
        "lowbar" | "UnderBar" => '_',
        "num" => '#',
        "excl" => '!',
        "bsol" => '\\',
        "grave" | "DiacriticalGrave" => '`',
        "lsqb" | "lbrack" => '[',
        "rsqb" | "rbrack" => ']',
        "lpar" => '(',
        "rpar" => ')',
        "ZeroWidthSpace" => '\u{200B}',
        "auml" => 'ä',
        "eacute" => 'é',
        _ => return None,
    };
    Some(c.to_string())
}
