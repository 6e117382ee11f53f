//! Input rules the real model enforces: channel names and fields (`Channel.IsValid`),
//! unicode sanitizing, and the Slack-link rewriting applied to ephemeral texts.

use crate::error::ApiError;

pub const CHANNEL_NAME_MAX: usize = 64;
pub const CHANNEL_DISPLAY_NAME_MAX: usize = 64;
pub const CHANNEL_HEADER_MAX: usize = 1024;
pub const CHANNEL_PURPOSE_MAX: usize = 250;

/// Drops the invisible/bidi characters `SanitizeUnicode` removes before validation.
pub fn sanitize_unicode(s: &str) -> String {
    s.chars()
        .filter(|c| {
            !matches!(*c as u32,
                0x00AD | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064
                | 0x2066..=0x2069 | 0xFEFF)
        })
        .collect()
}

/// `^[a-z0-9]+([a-z\-\_0-9]+|(__)?)[a-z0-9]*$`: first char lowercase alphanumeric,
/// the rest lowercase alphanumeric, `-` or `_`.
fn matches_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

pub fn is_id(s: &str) -> bool {
    s.len() == 26
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// Names reserved for direct/group messages: a 40-char lowercase hex string, or
/// `<id>__<id>`.
fn is_reserved_dm_name(name: &str) -> bool {
    if name.len() == 40 && name.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        return true;
    }
    matches!(name.split_once("__"), Some((a, b)) if is_id(a) && is_id(b))
}

pub fn validate_channel_name(name: &str) -> Result<(), ApiError> {
    if is_reserved_dm_name(name) {
        return Err(ApiError::new(
            400,
            "model.channel.is_valid.name.app_error",
            "Invalid channel name. User ids are not permitted in channel name for non-direct message channels.",
        ));
    }
    if name.is_empty() || name.len() > CHANNEL_NAME_MAX || !matches_identifier(name) {
        return Err(ApiError::new(
            400,
            "model.channel.is_valid.1_or_more.app_error",
            "Name must be 1 or more lowercase alphanumeric characters.",
        ));
    }
    Ok(())
}

pub fn validate_display_name(display_name: &str) -> Result<(), ApiError> {
    let n = display_name.chars().count();
    if n == 0 || n > CHANNEL_DISPLAY_NAME_MAX {
        return Err(ApiError::new(
            400,
            "model.channel.is_valid.display_name.app_error",
            "Invalid display name.",
        ));
    }
    Ok(())
}

pub fn validate_header(header: &str) -> Result<(), ApiError> {
    if header.chars().count() > CHANNEL_HEADER_MAX {
        return Err(ApiError::new(
            400,
            "model.channel.is_valid.header.app_error",
            "Invalid header.",
        ));
    }
    Ok(())
}

pub fn validate_purpose(purpose: &str) -> Result<(), ApiError> {
    if purpose.chars().count() > CHANNEL_PURPOSE_MAX {
        return Err(ApiError::new(
            400,
            "model.channel.is_valid.purpose.app_error",
            "Invalid purpose.",
        ));
    }
    Ok(())
}

/// `<url|text>` → `[text](url)` (`ParseSlackLinksToMarkdown`); other text is untouched.
pub fn slack_links_to_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let parsed = after.find('>').and_then(|end| {
            let inner = &after[..end];
            let (url, label) = inner.split_once('|')?;
            let ok = !url.is_empty()
                && !label.is_empty()
                && !inner.contains('<')
                && !label.contains('|');
            ok.then(|| (format!("[{label}]({url})"), end))
        });
        match parsed {
            Some((md, end)) => {
                out.push_str(&md);
                rest = &after[end + 1..];
            }
            None => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names() {
        assert!(validate_channel_name("lhc-12").is_ok());
        assert!(validate_channel_name("a").is_ok());
        assert!(validate_channel_name("ab_").is_ok());
        assert!(validate_channel_name("-ab").is_err());
        assert!(validate_channel_name("Ab").is_err());
        assert!(validate_channel_name(&"a".repeat(65)).is_err());
        let hex = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            validate_channel_name(hex).unwrap_err().id,
            "model.channel.is_valid.name.app_error"
        );
        let dm = format!("{}__{}", "a".repeat(26), "b".repeat(26));
        assert_eq!(
            validate_channel_name(&dm).unwrap_err().id,
            "model.channel.is_valid.name.app_error"
        );
    }

    #[test]
    fn slack_links() {
        assert_eq!(
            slack_links_to_markdown("see <https://x.y|here> now <b>"),
            "see [here](https://x.y) now <b>"
        );
    }
}
