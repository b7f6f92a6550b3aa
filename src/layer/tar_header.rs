//! Pure parsing of tar header fields and PAX records, shared by the reader. Kept apart from the
//! streaming logic so each rule (numeric encodings, checksum variants, PAX record framing) can
//! be tested on its own.

use std::collections::BTreeMap;

use super::read::ReadError;

/// The tar block size: headers and data are padded to it.
pub(crate) const BLOCK: usize = 512;

pub(crate) fn padding_for(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

pub(crate) fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    if let Some(pos) = v.iter().position(|&b| b == 0) {
        v.truncate(pos);
    }
    v
}

/// A NUL-terminated (or full-width) header string field.
pub(crate) fn field_str(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(pos) => &field[..pos],
        None => field,
    }
}

pub(crate) fn verify_checksum(
    block: &[u8; BLOCK],
    path: &str,
    offset: u64,
) -> Result<(), ReadError> {
    let stored = parse_number(&block[148..156])
        .and_then(|v| u64::try_from(v).ok())
        .ok_or(ReadError::BadNumber {
            path: path.to_string(),
            offset,
            field: "checksum",
        })?;
    let mut unsigned = 0u64;
    let mut signed = 0i64;
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if stored == unsigned || i64::try_from(stored).ok() == Some(signed) {
        Ok(())
    } else {
        Err(ReadError::BadChecksum {
            path: path.to_string(),
            offset,
            stored,
            computed: unsigned,
        })
    }
}

/// Octal (space/NUL padded) or GNU base-256 (high bit set; `0xff` lead means negative).
pub(crate) fn parse_number(field: &[u8]) -> Option<i128> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        let negative = field[0] == 0xff;
        let mut v: i128 = if negative {
            -1
        } else {
            i128::from(field[0] & 0x7f)
        };
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(i128::from(b))?;
            if v.unsigned_abs() > u128::from(u64::MAX) {
                return None;
            }
        }
        return Some(v);
    }
    let s: &[u8] = field_str(field);
    let s = s
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != b' ')
        .collect::<Vec<_>>();
    if s.is_empty() {
        return Some(0);
    }
    let mut v: i128 = 0;
    for b in s {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        v = v * 8 + i128::from(b - b'0');
    }
    Some(v)
}

/// `seconds[.fraction]`, possibly negative; the fraction is dropped (floor for negatives).
pub(crate) fn parse_pax_time(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = int.parse().ok()?;
    if (secs < 0 || int.starts_with('-')) && frac.bytes().any(|b| b != b'0') {
        return secs.checked_sub(1);
    }
    Some(secs)
}

/// Parses `"%d %s=%s\n"` records into `out` (later records override earlier ones).
pub(crate) fn parse_pax(
    data: &[u8],
    out: &mut BTreeMap<String, Vec<u8>>,
    path: &str,
    offset: u64,
) -> Result<(), ReadError> {
    let bad = |reason| ReadError::BadPax {
        path: path.to_string(),
        offset,
        reason,
    };
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let sp = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or(bad("record without a length"))?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(bad("record length is not a number"))?;
        if len <= sp + 1 || len > rest.len() {
            return Err(bad("record length exceeds the header"));
        }
        let record = &rest[sp + 1..len];
        let record = record
            .strip_suffix(b"\n")
            .ok_or(bad("record does not end with a newline"))?;
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or(bad("record without `=`"))?;
        let key = std::str::from_utf8(&record[..eq]).map_err(|_| bad("record key is not UTF-8"))?;
        let value = &record[eq + 1..];
        if (key == "path" || key == "linkpath") && value.contains(&0) {
            return Err(bad("path record contains a NUL byte"));
        }
        if value.is_empty() {
            out.remove(key);
        } else {
            out.insert(key.to_string(), value.to_vec());
        }
        rest = &rest[len..];
    }
    Ok(())
}
