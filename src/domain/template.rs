//! Templates for what parley writes into Mattermost (the request post, the chat channel's
//! display name, header and first post): text with `{variable}`s, sections that show only
//! when a variable has a value (`{#email} · {email}{/email}`), and `{{`/`}}` for literal
//! braces. Checked when saved (`validate`); rendering never fails: an unknown variable is
//! shown as written. Visitor-provided values are made inert for Mattermost when rendered
//! into Markdown, so a template can never let a visitor mention anyone or inject Markdown.

use super::markdown::escape_for_mattermost;

/// Every variable a template may use.
pub const VARIABLES: &[&str] = &[
    "nick",
    "email",
    "phone",
    "department",
    "id",
    "url",
    "page_url",
    "referrer",
    "message",
    "time_created",
];

/// How values are inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Mattermost Markdown (posts, the header): visitor values are escaped.
    Markdown,
    /// Plain one-line text (the channel display name): values are put on one line, unescaped,
    /// since Mattermost shows display names as they are.
    Plain,
}

/// The values of one chat. Missing values render as nothing.
#[derive(Debug, Clone, Default)]
pub struct Values {
    values: Vec<(&'static str, String, Trust)>,
}

/// Whether a value came from the visitor (escaped) or from parley itself (inserted as is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    Visitor,
    Parley,
}

impl Values {
    /// Sets a variable (empty values count as missing).
    pub fn set(&mut self, name: &'static str, value: Option<&str>, trust: Trust) -> &mut Self {
        if let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) {
            self.values.retain(|(n, _, _)| *n != name);
            self.values.push((name, v.to_owned(), trust));
        }
        self
    }

    fn get(&self, name: &str) -> Option<(&str, Trust)> {
        self.values
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, v, t)| (v.as_str(), *t))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    Text(&'a str),
    /// `{{` or `}}`.
    Brace(char),
    /// `{name}` with a known name.
    Var(&'a str),
    Open(&'a str),
    Close(&'a str),
    /// `{…}` that is not a known tag, or a lone brace: shown as written.
    Literal(&'a str),
}

/// Splits a template into tokens; also reports the first structural mistake, if any.
fn tokenize(template: &str) -> (Vec<Token<'_>>, Option<String>) {
    let mut tokens = Vec::new();
    let mut problem = None;
    let mut rest = template;
    while !rest.is_empty() {
        let Some(i) = rest.find(['{', '}']) else {
            tokens.push(Token::Text(rest));
            break;
        };
        if i > 0 {
            tokens.push(Token::Text(&rest[..i]));
        }
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("{{") {
            tokens.push(Token::Brace('{'));
            rest = r;
            continue;
        }
        if let Some(r) = rest.strip_prefix("}}") {
            tokens.push(Token::Brace('}'));
            rest = r;
            continue;
        }
        if rest.starts_with('}') {
            problem.get_or_insert_with(|| {
                "a `}` without its `{` (write `}}` for a literal brace)".to_owned()
            });
            tokens.push(Token::Literal("}"));
            rest = &rest[1..];
            continue;
        }
        // `{`: its tag runs to the next `}`, unless another `{` comes first.
        let close = rest[1..].find(['{', '}']).map(|j| j + 1);
        match close {
            Some(j) if rest.as_bytes()[j] == b'}' => {
                let inner = &rest[1..j];
                let whole = &rest[..=j];
                let token = if let Some(name) = inner.strip_prefix('#') {
                    if VARIABLES.contains(&name) {
                        Token::Open(name)
                    } else {
                        problem.get_or_insert_with(|| format!("`{whole}` names no variable"));
                        Token::Literal(whole)
                    }
                } else if let Some(name) = inner.strip_prefix('/') {
                    if VARIABLES.contains(&name) {
                        Token::Close(name)
                    } else {
                        problem.get_or_insert_with(|| format!("`{whole}` names no variable"));
                        Token::Literal(whole)
                    }
                } else if VARIABLES.contains(&inner) {
                    Token::Var(inner)
                } else {
                    Token::Literal(whole)
                };
                tokens.push(token);
                rest = &rest[j + 1..];
            }
            _ => {
                problem.get_or_insert_with(|| {
                    "a `{` without its `}` (write `{{` for a literal brace)".to_owned()
                });
                tokens.push(Token::Literal("{"));
                rest = &rest[1..];
            }
        }
    }
    (tokens, problem)
}

/// Checks a template before it is saved: braces balanced, sections closed in order, at most
/// `max_chars` characters, and on one line for `Target::Plain`.
pub fn validate(template: &str, max_chars: usize, target: Target) -> Result<(), String> {
    let len = template.chars().count();
    if len > max_chars {
        return Err(format!(
            "is {len} characters long; at most {max_chars} are allowed"
        ));
    }
    if target == Target::Plain && template.contains(['\n', '\r']) {
        return Err("must be one line".into());
    }
    if let Some(c) = template
        .chars()
        .find(|&c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(format!("contains the control character U+{:04X}", c as u32));
    }
    let (tokens, problem) = tokenize(template);
    if let Some(p) = problem {
        return Err(p);
    }
    let mut open: Vec<&str> = Vec::new();
    for t in tokens {
        match t {
            Token::Open(name) => open.push(name),
            Token::Close(name) => match open.pop() {
                Some(o) if o == name => {}
                Some(o) => return Err(format!("`{{/{name}}}` closes `{{#{o}}}`")),
                None => return Err(format!("`{{/{name}}}` closes no section")),
            },
            _ => {}
        }
    }
    if let Some(o) = open.pop() {
        return Err(format!("`{{#{o}}}` is never closed with `{{/{o}}}`"));
    }
    Ok(())
}

/// Renders a template. Never fails: what cannot be understood is shown as written.
pub fn render(template: &str, values: &Values, target: Target) -> String {
    let (tokens, _) = tokenize(template);
    let mut out = String::with_capacity(template.len() + 64);
    // Sections being shown (true) or skipped (false), innermost last.
    let mut sections: Vec<(&str, bool)> = Vec::new();
    let showing = |s: &[(&str, bool)]| s.iter().all(|(_, on)| *on);
    for t in tokens {
        match t {
            Token::Open(name) => sections.push((name, values.get(name).is_some())),
            Token::Close(name) if sections.last().is_some_and(|(n, _)| *n == name) => {
                sections.pop();
            }
            _ if !showing(&sections) => {}
            Token::Text(s) | Token::Literal(s) => out.push_str(s),
            Token::Close(name) => {
                out.push_str("{/");
                out.push_str(name);
                out.push('}');
            }
            Token::Brace(c) => out.push(c),
            Token::Var(name) => {
                if let Some((value, trust)) = values.get(name) {
                    out.push_str(&insert(value, trust, target));
                }
            }
        }
    }
    out
}

fn insert(value: &str, trust: Trust, target: Target) -> String {
    match target {
        Target::Plain => value
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
        Target::Markdown if trust == Trust::Parley => value.to_owned(),
        Target::Markdown => escape_for_mattermost(value),
    }
}

/// Shortens `text` to at most `max` characters with an ellipsis, never leaving a lone
/// backslash at the cut (it would escape the ellipsis, or with Markdown, the next text).
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut t: String = text.chars().take(max.saturating_sub(1)).collect();
    let trailing = t.chars().rev().take_while(|&c| c == '\\').count();
    if trailing % 2 == 1 {
        t.pop();
    }
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values {
        let mut v = Values::default();
        v.set("nick", Some("Erika"), Trust::Visitor)
            .set("email", Some("erika@example.com"), Trust::Visitor)
            .set("id", Some("abc-123"), Trust::Parley)
            .set(
                "url",
                Some("https://p.example/admin/chats/abc-123"),
                Trust::Parley,
            );
        v
    }

    #[test]
    fn variables_sections_and_literal_braces() {
        let cases = [
            ("Chat: {nick}", "Chat: Erika"),
            (
                "{nick}{#email} · {email}{/email}{#phone} · {phone}{/phone}",
                "Erika · erika@example.com",
            ),
            ("{{nick}} {nick}", "{nick} Erika"),
            ("see {url}", "see https://p.example/admin/chats/abc-123"),
            (
                "{unknown} and {also unknown} stay",
                "{unknown} and {also unknown} stay",
            ),
            ("{#phone}never{/phone}shown", "shown"),
        ];
        for (template, want) in cases {
            assert_eq!(
                render(template, &values(), Target::Markdown),
                want,
                "{template}"
            );
        }
    }

    #[test]
    fn visitor_values_cannot_mention_or_inject_markdown() {
        let mut v = Values::default();
        v.set(
            "nick",
            Some("@channel **boss** {email} ![x](http://t/x.png)"),
            Trust::Visitor,
        )
        .set("email", Some("secret@example.com"), Trust::Visitor);
        let out = render("New chat from {nick}", &v, Target::Markdown);
        assert!(!out.contains("@channel"), "{out}");
        assert!(!out.contains("**boss**"), "{out}");
        assert!(!out.contains("!["), "{out}");
        assert!(!out.contains("secret"), "values are not templates: {out}");
        let plain = render("Chat: {nick}", &v, Target::Plain);
        assert!(
            plain.starts_with("Chat: @channel"),
            "display names are plain text: {plain}"
        );
    }

    #[test]
    fn mistakes_are_refused_when_saved() {
        let cases = [
            ("Chat {nick", "without its `}`"),
            ("Chat nick}", "without its `{`"),
            ("{#email}x", "never closed"),
            ("{#email}{#phone}x{/email}{/phone}", "closes"),
            ("x{/email}", "closes no section"),
            ("{#bogus}x{/bogus}", "names no variable"),
            ("line\nbreak", "one line"),
        ];
        for (template, want) in cases {
            let err = validate(template, 100, Target::Plain).unwrap_err();
            assert!(err.contains(want), "{template}: {err}");
        }
        assert!(validate(&"x".repeat(101), 100, Target::Markdown).is_err());
        assert!(validate("{unknown} is fine", 100, Target::Markdown).is_ok());
        assert!(validate("a\nb {{literal}}", 100, Target::Markdown).is_ok());
    }

    #[test]
    fn truncation_never_leaves_a_lone_backslash() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("ab\\*cd", 4), "ab…");
        assert_eq!(truncate("ab\\\\cd", 5), "ab\\\\…");
    }
}
