//! Parsing of untrusted visitor input (names, e-mails, message text, URLs) into clean values,
//! with an error that names the field and a stable code.

/// Why a field was refused. The API spells each as a stable code (`http::error::ErrorCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldCode {
    MessageRequired,
    MessageTooLong,
    FieldTooLong,
    InvalidCharacters,
    EmailInvalid,
    PhoneInvalid,
    UrlInvalid,
}

/// Why a field was refused, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub code: FieldCode,
    pub message: String,
}

fn field_error(field: &'static str, code: FieldCode, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        code,
        message: message.into(),
    }
}

/// Normalises line endings, refuses control characters other than newline and tab, and trims.
fn clean(field: &'static str, raw: &str, multiline: bool) -> Result<String, FieldError> {
    let text = raw.replace("\r\n", "\n").replace('\r', "\n");
    if let Some(c) = text
        .chars()
        .find(|&c| c.is_control() && !(multiline && (c == '\n' || c == '\t')) && c != ' ')
    {
        let what = if c == '\n' {
            "line breaks".to_owned()
        } else {
            format!("the control character U+{:04X}", c as u32)
        };
        return Err(field_error(
            field,
            FieldCode::InvalidCharacters,
            format!("`{field}` must not contain {what}"),
        ));
    }
    Ok(text.trim().to_owned())
}

/// A required message text of at most `max` characters.
pub fn message_text(field: &'static str, raw: &str, max: usize) -> Result<String, FieldError> {
    let text = clean(field, raw, true)?;
    if text.is_empty() {
        return Err(field_error(
            field,
            FieldCode::MessageRequired,
            format!("`{field}` must not be empty"),
        ));
    }
    let len = text.chars().count();
    if len > max {
        return Err(field_error(
            field,
            FieldCode::MessageTooLong,
            format!("`{field}` has {len} characters; the limit is {max}"),
        ));
    }
    Ok(text)
}

/// An optional one-line field; blank becomes `None`.
pub fn optional_line(
    field: &'static str,
    raw: Option<&str>,
    max: usize,
) -> Result<Option<String>, FieldError> {
    let Some(raw) = raw else { return Ok(None) };
    let text = clean(field, raw, false)?;
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().count() > max {
        return Err(field_error(
            field,
            FieldCode::FieldTooLong,
            format!("`{field}` is longer than {max} characters"),
        ));
    }
    Ok(Some(text))
}

/// An optional e-mail address, checked for shape only (the visitor is not verified).
pub fn optional_email(
    field: &'static str,
    raw: Option<&str>,
) -> Result<Option<String>, FieldError> {
    let Some(email) = optional_line(field, raw, 254)? else {
        return Ok(None);
    };
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.contains(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    };
    if !valid {
        return Err(field_error(
            field,
            FieldCode::EmailInvalid,
            format!("`{field}` is not an e-mail address"),
        ));
    }
    Ok(Some(email))
}

/// An optional phone number: digits with the usual separators (`+`, spaces, `-`, `/`, `.`,
/// parentheses), at most 40 characters.
pub fn optional_phone(
    field: &'static str,
    raw: Option<&str>,
) -> Result<Option<String>, FieldError> {
    let Some(phone) = optional_line(field, raw, 40)? else {
        return Ok(None);
    };
    let allowed = |c: char| c.is_ascii_digit() || " +-/.()".contains(c);
    if !phone.chars().all(allowed) || phone.chars().filter(char::is_ascii_digit).count() < 3 {
        return Err(field_error(
            field,
            FieldCode::PhoneInvalid,
            format!("`{field}` is not a phone number"),
        ));
    }
    Ok(Some(phone))
}

/// An optional http(s) URL such as the page the visitor is on.
pub fn optional_url(
    field: &'static str,
    raw: Option<&str>,
    max: usize,
) -> Result<Option<String>, FieldError> {
    let Some(text) = optional_line(field, raw, max)? else {
        return Ok(None);
    };
    match url::Url::parse(&text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(Some(u.to_string())),
        _ => Err(field_error(
            field,
            FieldCode::UrlInvalid,
            format!("`{field}` must be an http(s) URL"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_text_rules() {
        let cases = [
            ("  hi  ", Ok("hi".to_owned()), "trimmed"),
            ("a\r\nb", Ok("a\nb".to_owned()), "CRLF normalised"),
            ("   ", Err(FieldCode::MessageRequired), "blank refused"),
            ("a\u{0}b", Err(FieldCode::InvalidCharacters), "NUL refused"),
            (
                "a\u{1b}[31m",
                Err(FieldCode::InvalidCharacters),
                "escape refused",
            ),
            (
                "ääääää",
                Err(FieldCode::MessageTooLong),
                "counted in characters",
            ),
        ];
        for (input, want, why) in cases {
            let got = message_text("text", input, 5).map_err(|e| e.code);
            assert_eq!(got, want, "{why}");
        }
    }

    #[test]
    fn one_line_fields_refuse_line_breaks() {
        assert_eq!(
            optional_line("name", Some("a\nb"), 10).unwrap_err().code,
            FieldCode::InvalidCharacters
        );
        assert_eq!(optional_line("name", Some("  "), 10).unwrap(), None);
    }

    #[test]
    fn emails_and_urls() {
        assert!(optional_email("email", Some("erika@example.com")).is_ok());
        for bad in ["erika", "@example.com", "erika@example", "a b@example.com"] {
            assert!(optional_email("email", Some(bad)).is_err(), "{bad}");
        }
        assert!(optional_url("page_url", Some("https://shop.example.com/x"), 100).is_ok());
        assert!(optional_url("page_url", Some("javascript:alert(1)"), 100).is_err());
        assert!(optional_phone("phone", Some("+49 (30) 123-456")).is_ok());
        for bad in ["call me", "@channel 123", "12"] {
            assert!(optional_phone("phone", Some(bad)).is_err(), "{bad}");
        }
    }
}
