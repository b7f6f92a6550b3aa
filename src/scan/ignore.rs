//! `--ignore FILE`: findings accepted for a stated reason until a date.
//!
//! ```toml
//! [[ignore]]
//! id = "CVE-2023-1234"        # the record id or any of its aliases
//! reason = "not reachable: the image has no shell"
//! expires = "2027-01-31"      # YYYY-MM-DD, the last day the entry holds (UTC)
//! ```
//!
//! Every entry must have a reason and an expiry date; an expired entry is an error, so an
//! exception is reviewed rather than forgotten.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Result, ScanError};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IgnoreEntry {
    pub id: String,
    pub reason: String,
    pub expires: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IgnoreFile {
    #[serde(default)]
    ignore: Vec<IgnoreEntry>,
}

#[derive(Debug, Clone, Default)]
pub struct IgnoreList {
    pub entries: Vec<IgnoreEntry>,
}

impl IgnoreList {
    /// Reads and checks `path` against `today` (days since 1970-01-01, UTC).
    pub fn read(path: &Path, today: i64) -> Result<IgnoreList> {
        let text = fs_err::read_to_string(path).map_err(|source| ScanError::IgnoreRead {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |message: String| ScanError::IgnoreParse {
            path: path.to_path_buf(),
            message,
        };
        let file: IgnoreFile = toml::from_str(&text).map_err(|e| bad(e.message().to_string()))?;
        for e in &file.ignore {
            if e.id.trim().is_empty() {
                return Err(bad("an entry has an empty id".into()));
            }
            if e.reason.trim().is_empty() {
                return Err(bad(format!("the entry for {} has an empty reason", e.id)));
            }
            let Some(day) = parse_day(&e.expires) else {
                return Err(bad(format!(
                    "the entry for {} has expires = \"{}\", not a YYYY-MM-DD date",
                    e.id, e.expires
                )));
            };
            if day < today {
                return Err(ScanError::IgnoreExpired {
                    path: path.to_path_buf(),
                    id: e.id.clone(),
                    expires: e.expires.clone(),
                });
            }
        }
        Ok(IgnoreList {
            entries: file.ignore,
        })
    }

    /// The entry that covers a finding with this id or these aliases.
    pub fn covering(&self, id: &str, aliases: &[String]) -> Option<&IgnoreEntry> {
        self.entries
            .iter()
            .find(|e| e.id == id || aliases.contains(&e.id))
    }
}

/// `YYYY-MM-DD` as days since 1970-01-01.
pub fn parse_day(s: &str) -> Option<i64> {
    let mut it = s.split('-');
    let (y, m, d) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, i64, i64) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > days_in[(m - 1) as usize] {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days() {
        assert_eq!(parse_day("1970-01-01"), Some(0));
        assert_eq!(parse_day("2000-03-01"), Some(11_017));
        assert_eq!(parse_day("2024-02-29"), Some(19_782));
        assert_eq!(parse_day("2023-02-29"), None);
        assert_eq!(parse_day("2023-1-01"), None);
    }
}
