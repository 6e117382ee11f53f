//! Markdown in both directions: visitor text made inert before it reaches Mattermost (no
//! mentions, no formatting tricks), and operator Markdown rendered to HTML that is safe to show
//! in the visitor's browser.

use std::sync::LazyLock;

use pulldown_cmark::{Event, Options, Parser, html};

/// Zero-width space: placed after `@` it splits `@channel` into two words for Mattermost's
/// mention parser (see mattermost-api.md §10), while looking unchanged to a reader.
const ZWSP: char = '\u{200B}';

/// Makes untrusted text show literally in Mattermost: every `@` is followed by a zero-width
/// space (no `@channel`, `@here`, `@all` or user pings), and Markdown syntax is backslash-escaped
/// (no links, images, headings, tables or code fences that could mislead an operator).
pub fn escape_for_mattermost(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        escape_line(line, &mut out);
    }
    out
}

fn escape_line(line: &str, out: &mut String) {
    let indent = line.len() - line.trim_start().len();
    out.push_str(&line[..indent]);
    let body = &line[indent..];
    // Block syntax that only means something at the start of a line.
    if body.starts_with(['-', '+', '=']) {
        out.push('\\');
    }
    let digits = body.chars().take_while(char::is_ascii_digit).count();
    let mut previous: Option<char> = None;
    for (pos, c) in body.chars().enumerate() {
        match c {
            // Only an `@` that starts a word can mention; `erika@example.com` stays intact so
            // operators can copy it.
            '@' if !previous.is_some_and(is_mention_word_char) => {
                out.push('@');
                out.push(ZWSP);
            }
            '\\' | '`' | '*' | '_' | '~' | '[' | ']' | '<' | '>' | '|' | '#' | '!' | '$' => {
                out.push('\\');
                out.push(c);
            }
            '.' | ')' if digits > 0 && pos == digits => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
        previous = Some(c);
    }
}

/// Characters Mattermost's mention parser keeps inside one word (mattermost-api.md §10).
fn is_mention_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, ':' | '.' | '-' | '_' | '@')
}

static SANITIZER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut b = ammonia::Builder::default();
    // No images: they could track the visitor or show content nobody reviewed.
    b.rm_tags(["img"]);
    b.link_rel(Some("noopener noreferrer nofollow"));
    b
});

/// Renders operator Markdown the way Mattermost shows it (a single newline is a line break)
/// and sanitises the HTML, so nothing an operator types can run script in the widget.
pub fn render_operator_html(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    // Raw HTML is shown as text, as Mattermost does; escaping `<` up front also keeps an HTML
    // block from swallowing the Markdown around it.
    let markdown = markdown.replace('<', "&lt;");
    let parser = Parser::new_ext(&markdown, options).map(|event| match event {
        Event::SoftBreak => Event::HardBreak,
        Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
        other => other,
    });
    let mut unsafe_html = String::new();
    html::push_html(&mut unsafe_html, parser);
    SANITIZER.clean(&unsafe_html).to_string()
}

/// Escapes text for inclusion in HTML (used for visitor and system messages).
pub fn html_escape(text: &str) -> String {
    ammonia::clean_text(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_broken_by_a_zero_width_space() {
        for mention in ["@channel", "@ALL", "@here", "@alice", "hi @here!"] {
            let out = escape_for_mattermost(mention);
            assert!(out.contains("@\u{200B}"), "{mention} -> {out:?}");
            assert!(!out.to_lowercase().contains("@channel"), "{out:?}");
            assert!(!out.to_lowercase().contains("@here"), "{out:?}");
        }
    }

    #[test]
    fn email_addresses_stay_copyable() {
        assert_eq!(
            escape_for_mattermost("erika@example.com"),
            "erika@example.com"
        );
        assert_eq!(escape_for_mattermost("(@here)"), "(@\u{200B}here)");
    }

    #[test]
    fn markdown_syntax_is_escaped() {
        let cases = [
            ("![x](http://t/p.png)", "\\!\\[x\\](http://t/p.png)"),
            ("# title", "\\# title"),
            ("- item", "\\- item"),
            ("1. first", "1\\. first"),
            ("> quote", "\\> quote"),
            ("```code```", "\\`\\`\\`code\\`\\`\\`"),
            ("a *b* _c_", "a \\*b\\* \\_c\\_"),
            ("plain, text. 3.5", "plain, text. 3.5"),
        ];
        for (input, want) in cases {
            assert_eq!(escape_for_mattermost(input), want, "{input}");
        }
    }

    #[test]
    fn operator_markdown_is_rendered_and_sanitised() {
        let html =
            render_operator_html("**sure** <img src=x onerror=alert(1)> [a](javascript:alert(1))");
        assert!(html.contains("<strong>sure</strong>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        let html = render_operator_html("![t](https://tracker.example/p.png)");
        assert!(!html.contains("<img"), "{html}");
        assert!(render_operator_html("a\nb").contains("<br"));
    }
}
