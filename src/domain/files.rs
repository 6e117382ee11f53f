//! What a file is, decided from its first bytes (never from its name or declared type), and
//! how its name may be shown. No I/O.

/// How many leading bytes `detect` needs.
pub const SNIFF_BYTES: usize = 8192;

/// Content types a browser may show inline from parley's origin: raster images only. SVG is
/// an image that can run script, so it is always downloaded.
const INLINE_IMAGES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

/// The content type of a file from its first bytes (up to [`SNIFF_BYTES`]).
///
/// Binary formats come from their signatures (`infer`). Anything that looks like markup a
/// browser would render (HTML, SVG, XML) is `text/html`/`image/svg+xml`/`text/xml` whatever
/// its name says; other UTF-8 text is `text/plain`; the rest is `application/octet-stream`.
pub fn detect(head: &[u8]) -> String {
    // A binary signature wins: such a file is served with its type and `nosniff`, so a
    // browser never reads markup hidden inside it.
    if let Some(kind) = infer::get(head)
        && kind.matcher_type() != infer::MatcherType::Text
    {
        return kind.mime_type().to_owned();
    }
    if let Some(markup) = markup_type(head) {
        return markup.to_owned();
    }
    if is_text(head) {
        return "text/plain".to_owned();
    }
    "application/octet-stream".to_owned()
}

/// Whether a content type may be shown inline (as an `<img>`) rather than downloaded.
pub fn is_inline_image(content_type: &str) -> bool {
    INLINE_IMAGES.contains(&content_type)
}

/// Markup browsers render or run, recognised like the WHATWG sniffing rules do: after
/// leading whitespace (and a byte-order mark), a tag that starts an HTML, SVG or XML document.
fn markup_type(head: &[u8]) -> Option<&'static str> {
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = text.iter().position(|b| !b.is_ascii_whitespace())?;
    let text = &text[start..];
    let lower: Vec<u8> = text.iter().take(512).map(u8::to_ascii_lowercase).collect();
    if lower.starts_with(b"<?xml") {
        return Some(if contains(&lower, b"<svg") {
            "image/svg+xml"
        } else {
            "text/xml"
        });
    }
    if lower.starts_with(b"<svg") {
        return Some("image/svg+xml");
    }
    const HTML_TAGS: &[&[u8]] = &[
        b"<!doctype html",
        b"<html",
        b"<head",
        b"<script",
        b"<iframe",
        b"<h1",
        b"<div",
        b"<font",
        b"<table",
        b"<a",
        b"<style",
        b"<title",
        b"<b",
        b"<body",
        b"<br",
        b"<p",
        b"<!--",
        b"<img",
        b"<object",
        b"<embed",
        b"<meta",
        b"<link",
        b"<form",
    ];
    let is_html = HTML_TAGS.iter().any(|tag| {
        lower.starts_with(tag)
            && lower.get(tag.len()).is_none_or(|b| {
                b.is_ascii_whitespace() || *b == b'>' || *b == b'/' || tag == b"<!--"
            })
    });
    if is_html {
        return Some("text/html");
    }
    // Markup further in (e.g. text before a <script>) is still markup to a browser sniffing
    // the whole file; such a file is refused as HTML rather than stored as text.
    if contains(&lower, b"<script") || contains(&lower, b"<html") || contains(&lower, b"<svg") {
        return Some("text/html");
    }
    None
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// UTF-8 text without control characters other than tab, newlines and form feed. The head
/// may end inside a multi-byte character.
fn is_text(head: &[u8]) -> bool {
    if head.is_empty() {
        return false;
    }
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    valid
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\x0c'))
}

/// Longest name kept, in characters.
const MAX_NAME_CHARS: usize = 120;

/// A file name safe to show and to put in a `Content-Disposition` header: the last path
/// component only, without control or bidirectional-override characters, trimmed, at most
/// 120 characters (keeping the extension), and never empty.
pub fn display_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim();
    if cleaned.is_empty() {
        return "file".to_owned();
    }
    if cleaned.chars().count() <= MAX_NAME_CHARS {
        return cleaned.to_owned();
    }
    let (stem, ext) = match cleaned.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.chars().count() <= 10 => (stem, ext),
        _ => (cleaned, ""),
    };
    let keep = MAX_NAME_CHARS - ext.chars().count() - 1;
    let stem: String = stem.chars().take(keep).collect();
    if ext.is_empty() {
        stem
    } else {
        format!("{stem}.{ext}")
    }
}

/// Characters that reorder the text around them: a name or message could show other words
/// than it holds ("Trojan Source").
pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";

    #[test]
    fn binary_types_come_from_the_content() {
        assert_eq!(detect(PNG), "image/png");
        assert_eq!(detect(b"\xFF\xD8\xFF\xE0\0\x10JFIF\0"), "image/jpeg");
        assert_eq!(detect(b"GIF89a\x01\0\x01\0"), "image/gif");
        assert_eq!(detect(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3"), "application/pdf");
        assert_eq!(detect(b"\0\x01\x02\x03binary"), "application/octet-stream");
    }

    #[test]
    fn markup_is_recognised_whatever_the_name() {
        assert_eq!(
            detect(b"<html><script>alert(1)</script></html>"),
            "text/html"
        );
        assert_eq!(detect(b"\n  <!DOCTYPE html><p>x"), "text/html");
        assert_eq!(detect(b"\xEF\xBB\xBF<script>x</script>"), "text/html");
        assert_eq!(detect(b"hello\n<script>alert(1)</script>"), "text/html");
        assert_eq!(
            detect(b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
            "image/svg+xml"
        );
        assert_eq!(detect(b"<?xml version='1.0'?><svg/>"), "image/svg+xml");
        assert_eq!(detect(b"<?xml version='1.0'?><a/>"), "text/xml");
    }

    #[test]
    fn plain_text_is_text() {
        assert_eq!(detect("Grüße,\nOrder 42 < 43\n".as_bytes()), "text/plain");
        // Cut inside a multi-byte character.
        assert_eq!(detect(&"äöü".as_bytes()[..5]), "text/plain");
        assert_eq!(detect(b"a\x07bell"), "application/octet-stream");
        assert_eq!(detect(b""), "application/octet-stream");
    }

    #[test]
    fn only_raster_images_are_inline() {
        assert!(is_inline_image("image/png"));
        assert!(!is_inline_image("image/svg+xml"));
        assert!(!is_inline_image("text/html"));
        assert!(!is_inline_image("application/pdf"));
    }

    #[test]
    fn names_are_made_safe_for_display() {
        assert_eq!(display_name("../../etc/passwd"), "passwd");
        assert_eq!(display_name("C:\\Users\\x\\report.pdf"), "report.pdf");
        assert_eq!(display_name("..\\..\\"), "file");
        assert_eq!(display_name(".htaccess"), "htaccess");
        assert_eq!(display_name("in\u{202e}gpj.exe"), "ingpj.exe");
        assert_eq!(display_name("a\r\nb.txt"), "ab.txt");
        assert_eq!(display_name("   "), "file");
        let long = format!("{}.png", "x".repeat(300));
        let short = display_name(&long);
        assert_eq!(short.chars().count(), 120);
        assert!(short.ends_with(".png"));
    }
}
