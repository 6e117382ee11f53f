//! Logging setup: human-readable by default, JSON lines with `PARLEY_LOG_FORMAT=json`;
//! the level comes from `RUST_LOG` (default `info`). One event is one line, whatever the
//! values in it: untrusted values are logged with `?` (escaped), and the writer escapes any
//! line break or control character that still reaches it.

use std::io::{self, IsTerminal, Write};

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// Installs the global subscriber (once; later calls are ignored, which tests rely on).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    // Colours only on a terminal: in a file or a collector they are noise (and escapes).
    let colours = io::stdout().is_terminal();
    let builder = fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(colours)
        .with_writer(move || OneLine {
            out: io::stdout(),
            keep_escapes: colours,
        });
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Writes one formatted event (the formatter hands over each event in one `write`) with
/// every control character but the final line break escaped, so no value can start a
/// forged line or send terminal commands. With colours on, ESC is the formatter's own and
/// kept: the formatter already escapes it inside values.
struct OneLine {
    out: io::Stdout,
    keep_escapes: bool,
}

impl Write for OneLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (body, end) = match buf.strip_suffix(b"\n") {
            Some(body) => (body, &b"\n"[..]),
            None => (buf, &b""[..]),
        };
        let escaped = escape_controls(body, self.keep_escapes);
        let mut out = self.out.lock();
        out.write_all(&escaped)?;
        out.write_all(end)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// `\n`, `\r` and other C0 controls (and DEL) as `\n`, `\r`, `\x07`…; tabs stay, and ESC
/// too when `keep_escapes`.
fn escape_controls(text: &[u8], keep_escapes: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for &b in text {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.push(b),
            0x1b if keep_escapes => out.push(b),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_split_or_colour_a_line() {
        let line = b"WARN refused user_id=a\nINFO forged\r\x1b[31mred\x07\x7f\tend";
        let out = String::from_utf8(escape_controls(line, false)).unwrap();
        assert_eq!(
            out,
            "WARN refused user_id=a\\nINFO forged\\r\\x1b[31mred\\x07\\x7f\tend"
        );
        let coloured = escape_controls(b"\x1b[2mtime\x1b[0m a\nb", true);
        assert_eq!(coloured, b"\x1b[2mtime\x1b[0m a\\nb");
        // UTF-8 passes unchanged.
        assert_eq!(
            escape_controls("Grüße".as_bytes(), false),
            "Grüße".as_bytes()
        );
    }
}
