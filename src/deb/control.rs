//! deb822 control stanzas (`Packages`, `Release`, `control`), read one at a time.
//!
//! Repository indexes are written by strangers and can be large (bookworm's main `Packages` is
//! ~45 MB), so the reader streams: it holds one stanza at a time and refuses a line or a stanza
//! larger than a fixed cap instead of growing without bound (SECURITY.md 42).

use std::io::BufRead;

/// The longest stanza accepted (the largest in Debian are a few tens of KiB).
pub const MAX_STANZA: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("failed to read {what}")]
    Read {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} line {line}: a stanza is larger than {MAX_STANZA} bytes")]
    TooLarge { what: String, line: u64 },
    #[error("{what} line {line}: expected `Field: value`")]
    Syntax { what: String, line: u64 },
    #[error("{what} line {line}: the text is not UTF-8")]
    NotUtf8 { what: String, line: u64 },
}

/// One stanza: fields in file order; names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stanza {
    pub fields: Vec<(String, String)>,
    /// The line the stanza starts on (1-based).
    pub line: u64,
}

impl Stanza {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn parse_all(text: &str, what: &str) -> Result<Vec<Stanza>, ControlError> {
        let mut reader = StanzaReader::new(text.as_bytes(), what);
        let mut out = Vec::new();
        while let Some(s) = reader.next_stanza()? {
            out.push(s);
        }
        Ok(out)
    }
}

/// Reads stanzas from a byte stream, one at a time, memory bounded by [`MAX_STANZA`].
pub struct StanzaReader<R> {
    reader: R,
    what: String,
    line: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> StanzaReader<R> {
    pub fn new(reader: R, what: &str) -> Self {
        StanzaReader {
            reader,
            what: what.to_string(),
            line: 0,
            buf: Vec::new(),
        }
    }

    /// One line without its newline; `None` at the end. Never reads more than the cap.
    fn read_line(&mut self) -> Result<Option<&[u8]>, ControlError> {
        self.buf.clear();
        let limit = (MAX_STANZA + 1) as u64;
        let n = std::io::Read::take(&mut self.reader, limit)
            .read_until(b'\n', &mut self.buf)
            .map_err(|source| ControlError::Read {
                what: self.what.clone(),
                source,
            })?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        if self.buf.len() > MAX_STANZA {
            return Err(ControlError::TooLarge {
                what: self.what.clone(),
                line: self.line,
            });
        }
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        Ok(Some(&self.buf))
    }

    pub fn next_stanza(&mut self) -> Result<Option<Stanza>, ControlError> {
        let mut stanza = Stanza::default();
        let mut size = 0usize;
        loop {
            let what = self.what.clone();
            let line_no = self.line + 1;
            let Some(raw) = self.read_line()? else {
                break;
            };
            let text = std::str::from_utf8(raw).map_err(|_| ControlError::NotUtf8 {
                what: what.clone(),
                line: line_no,
            })?;
            if text.trim().is_empty() {
                if stanza.fields.is_empty() {
                    continue;
                }
                break;
            }
            if text.starts_with('#') {
                continue;
            }
            size += text.len() + 1;
            if size > MAX_STANZA {
                return Err(ControlError::TooLarge {
                    what,
                    line: line_no,
                });
            }
            if text.starts_with([' ', '\t']) {
                let Some((_, value)) = stanza.fields.last_mut() else {
                    return Err(ControlError::Syntax {
                        what,
                        line: line_no,
                    });
                };
                value.push('\n');
                value.push_str(text.trim_start());
                continue;
            }
            let Some((name, value)) = text.split_once(':') else {
                return Err(ControlError::Syntax {
                    what,
                    line: line_no,
                });
            };
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(ControlError::Syntax {
                    what,
                    line: line_no,
                });
            }
            if stanza.fields.is_empty() {
                stanza.line = line_no;
            }
            stanza
                .fields
                .push((name.to_string(), value.trim().to_string()));
        }
        Ok((!stanza.fields.is_empty()).then_some(stanza))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stanzas_with_continuations() {
        let text = "Package: a\nDescription: short\n long\n .\n\n\nPackage: b\r\nVersion: 1\n";
        let all = Stanza::parse_all(text, "t").unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].get("description"), Some("short\nlong\n."));
        assert_eq!(all[1].get("Version"), Some("1"));
        assert_eq!(all[1].line, 7);
    }

    #[test]
    fn refuses_a_continuation_first_and_a_line_without_colon() {
        assert!(Stanza::parse_all(" x\n", "t").is_err());
        assert!(Stanza::parse_all("Package a\n", "t").is_err());
    }

    #[test]
    fn refuses_a_huge_line_without_reading_it_all() {
        let huge = format!("Package: {}\n", "x".repeat(MAX_STANZA + 10));
        let err = Stanza::parse_all(&huge, "t").unwrap_err();
        assert!(matches!(err, ControlError::TooLarge { .. }), "{err}");
    }
}
