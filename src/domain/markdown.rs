//! Markdown in both directions: visitor text made inert before it reaches Mattermost (no
//! mentions, no formatting tricks), and operator Markdown rendered to HTML that is safe to show
//! in the visitor's browser.

use std::sync::LazyLock;

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, html};

/// Zero-width space: placed after `@` it ends the word for Mattermost's mention parser (it is
/// neither a letter nor a number), while looking unchanged to a reader.
const ZWSP: char = '\u{200B}';

/// Makes untrusted text show literally in Mattermost and mention nobody.
///
/// Mattermost finds mentions by parsing the post as Markdown, joining the text of adjacent Text
/// nodes (backslash escapes and character references such as `&commat;` already decoded), and
/// cutting that into words on every character that is not a letter, a number or one of
/// `: . - _ @`; a word is then trimmed of leading `:.-_`, stripped of trailing `.-:_` and split
/// on `.-:` before each part is compared with `@channel`, `@all`, `@here` and `@username`
/// (docs/decisions.md, "Mentions and Markdown from visitors", has the sources). So:
/// - every `@` is followed by a zero-width space, which ends the word right after the `@`, so
///   no word can continue into a name; the only exception is an `@` right after an ASCII letter
///   or digit (e-mail addresses stay copyable), which no trimming or splitting can ever bring to
///   the start of a word, and only a word starting with `@` is compared with those names;
/// - every `&` is escaped, so no character reference is decoded (into an `@` or anything else);
/// - bidirectional controls are dropped, so an operator reads the words in the order they were
///   written (a right-to-left override could make a message show other words than it holds);
/// - Markdown syntax is backslash-escaped (no links, images, headings, tables or code fences
///   that could mislead an operator), and so is every backslash, so an escape cannot be undone.
pub fn escape_for_mattermost(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    // Markdown ends a line at CR LF, a lone CR or LF: each is a line here, so that no line's
    // leading spaces survive (four of them after a blank line would make a code block).
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        escape_line(line, &mut out);
    }
    out
}

fn escape_line(line: &str, out: &mut String) {
    // Leading whitespace is dropped: a paragraph does not show it anyway, and four columns of
    // it would turn the line into a code block.
    let body: String = line
        .chars()
        .filter(|c| !super::files::is_bidi_control(*c))
        .collect();
    let body = body.trim_start();
    // Block syntax that only means something at the start of a line.
    if body.starts_with(['-', '+', '=']) {
        out.push('\\');
    }
    let digits = body.chars().take_while(char::is_ascii_digit).count();
    let mut previous: Option<char> = None;
    for (pos, c) in body.chars().enumerate() {
        match c {
            '@' => {
                out.push('@');
                if !previous.is_some_and(|p| p.is_ascii_alphanumeric()) {
                    out.push(ZWSP);
                }
            }
            '\\' | '`' | '*' | '_' | '~' | '[' | ']' | '<' | '>' | '|' | '#' | '!' | '$' | '&' => {
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

static SANITIZER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut b = ammonia::Builder::default();
    // No images: they could track the visitor or show content nobody reviewed.
    b.rm_tags(["img"]);
    b.link_rel(Some("noopener noreferrer nofollow"));
    b
});

/// Stands in for `<` while operator Markdown is parsed. A noncharacter (never meant for
/// interchange), so no operator text needs it; one typed anyway is replaced first.
const LT_STAND_IN: char = '\u{FDD0}';

/// Renders operator Markdown the way Mattermost shows it (a single newline is a line break)
/// and sanitises the HTML, so nothing an operator types can run script in the widget.
///
/// Raw HTML is shown as text, as Mattermost does. To keep an HTML block from swallowing the
/// Markdown around it, the parser never sees a `<`: each one is replaced by a stand-in that
/// has no meaning in Markdown, and put back as text afterwards, in code spans and code blocks
/// too (where an entity like `&lt;` would have shown literally).
pub fn render_operator_html(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let source: String = markdown
        .chars()
        .map(|c| match c {
            '<' => LT_STAND_IN,
            LT_STAND_IN => char::REPLACEMENT_CHARACTER,
            c => c,
        })
        .collect();
    let restore = |s: CowStr<'_>| -> CowStr<'static> { CowStr::from(s.replace(LT_STAND_IN, "<")) };
    let parser = Parser::new_ext(&source, options).map(|event| match event {
        Event::SoftBreak => Event::HardBreak,
        Event::Html(h) | Event::InlineHtml(h) => Event::Text(restore(h)),
        Event::Text(t) => Event::Text(restore(t)),
        Event::Code(t) => Event::Code(restore(t)),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: restore(dest_url),
            title: restore(title),
            id: restore(id),
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: restore(dest_url),
            title: restore(title),
            id: restore(id),
        }),
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
    fn every_at_that_could_start_a_word_is_cut_and_no_reference_is_decoded() {
        let cases = [
            ("erika@example.com", "erika@example.com"),
            ("(@here)", "(@\u{200B}here)"),
            ("x.@channel", "x.@\u{200B}channel"),
            ("_@here", "\\_@\u{200B}here"),
            ("@@all", "@\u{200B}@\u{200B}all"),
            ("x-@alice", "x-@\u{200B}alice"),
            (":@alice", ":@\u{200B}alice"),
            ("&commat;channel", "\\&commat;channel"),
            ("&#64;all", "\\&\\#64;all"),
            ("    @here", "@\u{200B}here"),
        ];
        for (input, want) in cases {
            assert_eq!(escape_for_mattermost(input), want, "{input}");
        }
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
        // (operator Markdown, what the HTML must contain, what it must not)
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("`a<b`", &["<code>a&lt;b</code>"], &["&amp;lt;"]),
            ("`<div>`", &["<code>&lt;div&gt;</code>"], &["<div"]),
            (
                "```\nif a < b && c > d {}\n```",
                &["<pre><code>if a &lt; b &amp;&amp; c &gt; d {}"],
                &["&amp;lt;"],
            ),
            ("    x<y", &["<pre><code>x&lt;y"], &["&amp;lt;"]),
            ("1 < 2 and 3 > 2", &["1 &lt; 2 and 3 &gt; 2"], &["&amp;lt;"]),
            (
                "a <b>bold</b> c",
                &["a &lt;b&gt;bold&lt;/b&gt; c"],
                &["<b>"],
            ),
            ("`&lt;` stays", &["<code>&amp;lt;</code>"], &[]),
            ("&lt; is an entity", &["&lt; is an entity"], &[]),
            // An HTML block does not swallow the Markdown after it.
            (
                "<div>\n**bold**",
                &["&lt;div&gt;", "<strong>bold</strong>"],
                &["<div"],
            ),
            (
                "<!-- x -->\n*em*",
                &["&lt;!-- x --&gt;", "<em>em</em>"],
                &["<!--"],
            ),
            (
                "**sure** <img src=x onerror=alert(1)> [a](javascript:alert(1))",
                &[
                    "<strong>sure</strong>",
                    "&lt;img src=x onerror=alert(1)&gt;",
                ],
                &["<img", "javascript:"],
            ),
            (
                "<script>alert(1)</script>",
                &["&lt;script&gt;"],
                &["<script"],
            ),
            ("`<script>`", &["<code>&lt;script&gt;</code>"], &["<script"]),
            ("[x](<javascript:alert(1)>)", &[], &["href=\"javascript"]),
            (
                "<https://example.com>",
                &["&lt;https://example.com&gt;"],
                &[],
            ),
            ("![t](https://tracker.example/p.png)", &[], &["<img"]),
            ("a\nb", &["<br"], &[]),
            ("\u{FDD0}<", &["\u{FFFD}&lt;"], &[]),
        ];
        for (markdown, present, absent) in cases {
            let html = render_operator_html(markdown);
            for p in *present {
                assert!(html.contains(p), "{markdown:?} -> {html:?} lacks {p:?}");
            }
            for a in *absent {
                assert!(!html.contains(a), "{markdown:?} -> {html:?} has {a:?}");
            }
        }
    }
}
