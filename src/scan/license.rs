//! The declared license of a Debian package, from its machine-readable copyright file
//! (`/usr/share/doc/PKG/copyright` in the DEP-5 format,
//! <https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/>), as an SPDX license
//! expression.
//!
//! The `License:` short names of every `Files` paragraph are combined with `AND`; within one,
//! Debian's `or` / `and` (and `and/or`, read as `or`) become `OR` / `AND`, a comma marks the
//! lower-precedence split (`A or B, and C` is `(A OR B) AND C`), and `X with Y exception`
//! becomes `X WITH Y-exception` for the exceptions SPDX lists. Debian short names become SPDX
//! ids where they differ (`GPL-2+` → `GPL-2.0-or-later`, `Expat` → `MIT`, `BSD-3-clause` →
//! `BSD-3-Clause` …); a name SPDX does not list becomes `LicenseRef-NAME`, which the SPDX
//! document declares in `hasExtractedLicensingInfos`. A copyright file that is not DEP-5 gives
//! no expression (the SBOM says `NOASSERTION`).

use std::collections::BTreeSet;

/// A package's declared license.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// The SPDX license expression.
    pub expression: String,
    /// The `LicenseRef-…` ids it uses, with the Debian name each stands for.
    pub refs: Vec<(String, String)>,
}

/// SPDX ids Debian copyright files use under the same name (compared case-insensitively).
const SPDX_IDS: &[&str] = &[
    "0BSD",
    "AFL-2.1",
    "AFL-3.0",
    "Apache-1.0",
    "Apache-1.1",
    "Apache-2.0",
    "Artistic-1.0",
    "Artistic-1.0-Perl",
    "Artistic-2.0",
    "Beerware",
    "BSD-1-Clause",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSD-3-Clause-Clear",
    "BSD-4-Clause",
    "BSD-4-Clause-UC",
    "BSL-1.0",
    "bzip2-1.0.6",
    "CC-BY-3.0",
    "CC-BY-4.0",
    "CC-BY-SA-3.0",
    "CC-BY-SA-4.0",
    "CC0-1.0",
    "CDDL-1.0",
    "curl",
    "EPL-1.0",
    "EPL-2.0",
    "EUPL-1.2",
    "FSFAP",
    "FSFUL",
    "FSFULLR",
    "FTL",
    "HPND",
    "ICU",
    "IJG",
    "Info-ZIP",
    "ISC",
    "Latex2e",
    "libpng-2.0",
    "Libpng",
    "MIT",
    "MIT-0",
    "MPL-1.1",
    "MPL-2.0",
    "NTP",
    "OFL-1.1",
    "OLDAP-2.8",
    "OpenSSL",
    "PostgreSQL",
    "PSF-2.0",
    "Python-2.0",
    "Ruby",
    "Sleepycat",
    "TCL",
    "Unicode-DFS-2016",
    "Unlicense",
    "Vim",
    "W3C",
    "WTFPL",
    "X11",
    "Zlib",
    "ZPL-2.1",
];

/// Debian short names whose SPDX id is another name.
const ALIASES: &[(&str, &str)] = &[
    ("Expat", "MIT"),
    ("Apache-2", "Apache-2.0"),
    ("MPL-2", "MPL-2.0"),
    ("Artistic", "Artistic-1.0-Perl"),
    ("Artistic-2", "Artistic-2.0"),
    ("Boost", "BSL-1.0"),
    ("BSL", "BSL-1.0"),
    ("CC0", "CC0-1.0"),
    ("Python", "Python-2.0"),
    ("PSF-2", "PSF-2.0"),
    ("BSD-2", "BSD-2-Clause"),
    ("BSD-3", "BSD-3-Clause"),
    ("OpenLDAP-2.8", "OLDAP-2.8"),
];

/// `with NAME exception` names SPDX lists, and their exception ids.
const EXCEPTIONS: &[(&str, &str)] = &[
    ("Bison", "Bison-exception-2.2"),
    ("Bison-2.2", "Bison-exception-2.2"),
    ("Libtool", "Libtool-exception"),
    ("Autoconf", "Autoconf-exception-generic"),
    ("Autoconf-3.0", "Autoconf-exception-3.0"),
    ("GCC-3.1", "GCC-exception-3.1"),
    ("OpenSSL", "openvpn-openssl-exception"),
    ("Texinfo", "Texinfo-exception"),
];

/// The paragraphs of a deb822 file: for each, its fields (lowercased name, first line of the
/// value), in order.
fn paragraphs(text: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) || line.starts_with('#') {
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            current.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn field<'a>(paragraph: &'a [(String, String)], name: &str) -> Option<&'a str> {
    paragraph
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Whether the header names the machine-readable format (1.0, or the DEP-5 drafts before it).
fn is_machine_readable(header: &[(String, String)]) -> bool {
    field(header, "format").is_some_and(|f| {
        let f = f.to_ascii_lowercase();
        f.contains("copyright-format/1.0") || f.contains("dep5") || f.contains("dep-5")
    })
}

/// The declared license of a copyright file, or `None` when it is not machine-readable or its
/// `Files` paragraphs name no license.
pub fn declared(copyright: &str) -> Option<Declared> {
    let paragraphs = paragraphs(copyright);
    if !paragraphs.first().is_some_and(|h| is_machine_readable(h)) {
        return None;
    }
    let mut refs = BTreeSet::new();
    // The conjuncts of every paragraph's expression, each once, sorted.
    let mut parts = BTreeSet::new();
    for p in &paragraphs {
        if field(p, "files").is_none() {
            continue;
        }
        match field(p, "license") {
            Some(l) if !l.is_empty() => {
                for conjunct in top_level_and(&expression(l, &mut refs)) {
                    parts.insert(conjunct);
                }
            }
            _ => {}
        }
    }
    if parts.is_empty() {
        return None;
    }
    let many = parts.len() > 1;
    let expression = parts
        .into_iter()
        .map(|p| match many && top_level_or(&p) {
            true => format!("({p})"),
            false => p,
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    Some(Declared {
        expression,
        refs: refs.into_iter().collect(),
    })
}

/// `expr` split at its top-level ` AND `s, each part without enclosing parentheses.
fn top_level_and(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b' ' if depth == 0 && expr[i..].starts_with(" AND ") => {
                out.extend(split_enclosed(&expr[start..i]));
                i += " AND ".len();
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.extend(split_enclosed(&expr[start..]));
    out
}

/// A conjunct: `(A AND B)` splits further, `(A OR B)` loses its parentheses.
fn split_enclosed(part: &str) -> Vec<String> {
    let t = part.trim();
    if let Some(inner) = t.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        let mut depth = 0i32;
        let encloses = inner.chars().all(|c| {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            depth >= 0
        });
        if encloses && depth == 0 {
            return top_level_and(inner);
        }
    }
    vec![t.to_string()]
}

/// Whether `expr` has an ` OR ` outside parentheses.
fn top_level_or(expr: &str) -> bool {
    let mut depth = 0i32;
    for (i, c) in expr.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ' ' if depth == 0 && expr[i..].starts_with(" OR ") => return true,
            _ => {}
        }
    }
    false
}

/// One `License:` first line as an SPDX expression.
fn expression(line: &str, refs: &mut BTreeSet<(String, String)>) -> String {
    // `A or B, and C`: the comma splits first.
    let groups: Vec<(Option<&str>, &str)> = split_commas(line);
    let many = groups.len() > 1;
    let mut out = String::new();
    for (op, group) in groups {
        if let Some(op) = op {
            out.push_str(&format!(" {op} "));
        }
        let g = group_expression(group, refs);
        if many && (g.contains(" OR ") || g.contains(" AND ")) {
            out.push_str(&format!("({g})"));
        } else {
            out.push_str(&g);
        }
    }
    out
}

/// Splits at `, and` / `, or`, keeping the operator that joins each group to the previous one.
fn split_commas(line: &str) -> Vec<(Option<&'static str>, &str)> {
    let mut out = Vec::new();
    let mut rest = line;
    let mut op = None;
    loop {
        let next = [(", and ", "AND"), (", or ", "OR")]
            .iter()
            .filter_map(|(sep, name)| rest.find(sep).map(|at| (at, sep.len(), *name)))
            .min();
        match next {
            Some((at, len, name)) => {
                out.push((op, rest[..at].trim()));
                op = Some(name);
                rest = &rest[at + len..];
            }
            None => {
                out.push((op, rest.trim()));
                return out;
            }
        }
    }
}

/// Terms joined by `or` / `and` / `and/or`.
fn group_expression(group: &str, refs: &mut BTreeSet<(String, String)>) -> String {
    let mut out = Vec::new();
    let mut term: Vec<&str> = Vec::new();
    for word in group.split_whitespace() {
        let op = match word.to_ascii_lowercase().as_str() {
            "or" | "and/or" => Some("OR"),
            "and" => Some("AND"),
            _ => None,
        };
        match op {
            Some(op) if !term.is_empty() => {
                out.push(term_expression(&term, refs));
                out.push(op.to_string());
                term.clear();
            }
            Some(_) => {}
            None => term.push(word.trim_end_matches(',')),
        }
    }
    if !term.is_empty() {
        out.push(term_expression(&term, refs));
    } else if out.last().is_some_and(|o| o == "OR" || o == "AND") {
        out.pop();
    }
    out.join(" ")
}

/// One license, possibly `NAME with EXCEPTION exception`.
fn term_expression(words: &[&str], refs: &mut BTreeSet<(String, String)>) -> String {
    if let [name, with, exception, last] = words {
        if with.eq_ignore_ascii_case("with") && last.eq_ignore_ascii_case("exception") {
            if let Some((_, id)) = EXCEPTIONS
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(exception))
            {
                return format!("{} WITH {id}", license_id(name, refs));
            }
        }
    }
    if let [name] = words {
        return license_id(name, refs);
    }
    license_ref(&words.join(" "), refs)
}

/// The SPDX id of one Debian short name.
pub fn license_id(name: &str, refs: &mut BTreeSet<(String, String)>) -> String {
    if let Some(id) = gnu_id(name) {
        return id;
    }
    let (base, plus) = match name.strip_suffix('+') {
        Some(base) => (base, "+"),
        None => (name, ""),
    };
    let known = ALIASES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(base))
        .map(|(_, id)| *id)
        .or_else(|| {
            SPDX_IDS
                .iter()
                .find(|id| id.eq_ignore_ascii_case(base))
                .copied()
        });
    match known {
        Some(id) => format!("{id}{plus}"),
        None => license_ref(name, refs),
    }
}

/// GNU licenses: `GPL-2+` → `GPL-2.0-or-later`, `LGPL-2.1` → `LGPL-2.1-only`,
/// `GFDL-NIV-1.3+` → `GFDL-1.3-no-invariants-or-later`.
fn gnu_id(name: &str) -> Option<String> {
    let (family, rest) = name.split_once('-')?;
    let family = match family.to_ascii_uppercase().as_str() {
        f @ ("GPL" | "LGPL" | "AGPL" | "GFDL") => f.to_string(),
        _ => return None,
    };
    let (niv, rest) = match rest.strip_prefix("NIV-") {
        Some(r) if family == "GFDL" => (true, r),
        _ => (false, rest),
    };
    let (version, later) = match rest.strip_suffix('+') {
        Some(v) => (v, true),
        None => (rest, false),
    };
    let version = match version {
        "1" | "1.0" => "1.0",
        "2" | "2.0" => "2.0",
        "2.1" => "2.1",
        "3" | "3.0" => "3.0",
        "1.1" | "1.2" | "1.3" if family == "GFDL" => version,
        _ => return None,
    };
    let valid = match family.as_str() {
        "GPL" => ["1.0", "2.0", "3.0"].contains(&version),
        "LGPL" => ["2.0", "2.1", "3.0"].contains(&version),
        "AGPL" => ["1.0", "3.0"].contains(&version),
        _ => ["1.1", "1.2", "1.3"].contains(&version),
    };
    if !valid {
        return None;
    }
    let niv = if niv { "-no-invariants" } else { "" };
    let suffix = if later { "or-later" } else { "only" };
    Some(format!("{family}-{version}{niv}-{suffix}"))
}

/// `LicenseRef-NAME`, NAME reduced to what SPDX ids allow (letters, digits, `.`, `-`).
fn license_ref(name: &str, refs: &mut BTreeSet<(String, String)>) -> String {
    let mut id = String::from("LicenseRef-");
    for c in name.chars() {
        match c {
            c if c.is_ascii_alphanumeric() || c == '.' || c == '-' => id.push(c),
            '+' => id.push_str("-or-later"),
            _ if !id.ends_with('-') => id.push('-'),
            _ => {}
        }
    }
    let id = id.trim_end_matches('-').to_string();
    refs.insert((id.clone(), name.to_string()));
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> String {
        license_id(name, &mut BTreeSet::new())
    }

    #[test]
    fn debian_names_map_to_spdx_ids() {
        let table = [
            ("GPL-2+", "GPL-2.0-or-later"),
            ("GPL-2", "GPL-2.0-only"),
            ("GPL-2.0+", "GPL-2.0-or-later"),
            ("GPL-1+", "GPL-1.0-or-later"),
            ("GPL-3+", "GPL-3.0-or-later"),
            ("LGPL-2.1+", "LGPL-2.1-or-later"),
            ("LGPL-2+", "LGPL-2.0-or-later"),
            ("LGPL-3", "LGPL-3.0-only"),
            ("GFDL-NIV-1.3+", "GFDL-1.3-no-invariants-or-later"),
            ("GFDL-1.2", "GFDL-1.2-only"),
            ("Expat", "MIT"),
            ("BSD-3-clause", "BSD-3-Clause"),
            ("BSD-4-clause-UC", "BSD-4-Clause-UC"),
            ("Apache-2", "Apache-2.0"),
            ("zlib", "Zlib"),
            ("Artistic", "Artistic-1.0-Perl"),
            ("MPL-1.1+", "MPL-1.1+"),
            ("public-domain", "LicenseRef-public-domain"),
            ("GPL-4", "LicenseRef-GPL-4"),
            (
                "GFDL-1.3+-no-invariant",
                "LicenseRef-GFDL-1.3-or-later-no-invariant",
            ),
            ("MIT/X11", "LicenseRef-MIT-X11"),
        ];
        for (debian, spdx) in table {
            assert_eq!(id(debian), spdx, "{debian}");
        }
    }

    #[test]
    fn expressions_keep_debian_precedence() {
        let table = [
            (
                "GPL-1+ or Artistic",
                "GPL-1.0-or-later OR Artistic-1.0-Perl",
            ),
            (
                "GPL-3+ with Bison exception",
                "GPL-3.0-or-later WITH Bison-exception-2.2",
            ),
            (
                "GPL-2+ with Texinfo exception",
                "GPL-2.0-or-later WITH Texinfo-exception",
            ),
            (
                "GPL-3+ with Autoconf-data exception",
                "LicenseRef-GPL-3-or-later-with-Autoconf-data-exception",
            ),
            (
                "GPL-2+ or Artistic-2.0, and BSD-3-clause",
                "(GPL-2.0-or-later OR Artistic-2.0) AND BSD-3-Clause",
            ),
            (
                "BSD-3-clause and/or GPL-3+",
                "BSD-3-Clause OR GPL-3.0-or-later",
            ),
            (
                "GPL-3+ or Less, and X11",
                "(GPL-3.0-or-later OR LicenseRef-Less) AND X11",
            ),
        ];
        for (debian, spdx) in table {
            assert_eq!(expression(debian, &mut BTreeSet::new()), spdx, "{debian}");
        }
    }

    #[test]
    fn files_paragraphs_are_combined_and_other_formats_are_no_assertion() {
        let text = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
                    Upstream-Name: x\n\nFiles: *\nCopyright: 2020 A\nLicense: GPL-2+\n\n\
                    Files: lib/*\nCopyright: 2021 B\nLicense: Expat or GPL-1+\n\n\
                    Files: doc/*\nLicense: GPL-2+\n\n\
                    License: GPL-2+\n This program is free software\n .\n more\n\n\
                    License: Expat\n Permission is hereby granted\n";
        let d = declared(text).unwrap();
        assert_eq!(
            d.expression,
            "GPL-2.0-or-later AND (MIT OR GPL-1.0-or-later)"
        );
        assert!(d.refs.is_empty());
        assert_eq!(
            declared("This is the Debian prepackaged version of X.\n\nLicense: GPL-2\n"),
            None
        );
        let pd = "Format: http://www.debian.org/doc/packaging-manuals/copyright-format/1.0\n\n\
                  Files: *\nLicense: public-domain\n";
        let d = declared(pd).unwrap();
        assert_eq!(d.expression, "LicenseRef-public-domain");
        assert_eq!(
            d.refs,
            [(
                "LicenseRef-public-domain".to_string(),
                "public-domain".to_string()
            )]
        );
    }
}

/// Real copyright files: those of the corpus `.deb`s (`scripts/setup.sh` downloads them into
/// `tests/corpus/debs`; a missing corpus fails the test).
#[cfg(test)]
mod corpus_tests {
    use std::collections::BTreeMap;

    use super::declared;
    use crate::layer::read::{ReadLimits, TarKind, TarReader};

    /// Package name → its `usr/share/doc/NAME/copyright`, from the data part of each `.deb`.
    pub(crate) fn corpus_copyright_files() -> BTreeMap<String, String> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/debs");
        let mut debs: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("the corpus is missing ({dir}: {e}): run scripts/setup.sh"))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "deb"))
            .collect();
        debs.sort();
        assert!(debs.len() >= 40, "{} debs in {dir}", debs.len());
        let mut out = BTreeMap::new();
        for deb in debs {
            let file = std::fs::File::open(&deb).unwrap();
            let stream =
                crate::layer::decompress::open_archive(file, &deb.display().to_string()).unwrap();
            let mut tar = TarReader::new(stream, ReadLimits::default());
            while let Some(entry) = tar.next_entry().unwrap() {
                let name = entry
                    .path
                    .trim_start_matches("./")
                    .strip_prefix("usr/share/doc/")
                    .and_then(|r| r.strip_suffix("/copyright"))
                    .map(str::to_string);
                match name {
                    Some(name) if entry.kind == TarKind::File => {
                        let mut bytes = Vec::new();
                        tar.read_data(&mut bytes).unwrap();
                        out.insert(name, String::from_utf8_lossy(&bytes).into_owned());
                    }
                    _ => tar.drain().unwrap(),
                }
            }
        }
        out
    }

    #[test]
    fn corpus_copyright_files_give_spdx_expressions() {
        let files = corpus_copyright_files();
        let got: BTreeMap<&str, Option<String>> = files
            .iter()
            .map(|(name, text)| (name.as_str(), declared(text).map(|d| d.expression)))
            .collect();
        let want = [
            ("gawk", "GPL-3.0-or-later"),
            ("iproute2", "GPL-2.0-only"),
            (
                "openssl",
                "Apache-2.0 AND (Artistic-1.0-Perl OR GPL-1.0-or-later)",
            ),
            ("zstd", "(BSD-3-Clause OR GPL-2.0-only) AND MIT AND Zlib"),
            (
                "tar",
                "GPL-2.0-or-later AND GPL-3.0-or-later AND GPL-3.0-or-later WITH \
                 Bison-exception-2.2 AND LGPL-3.0-or-later",
            ),
            (
                "coreutils",
                "BSD-4-Clause-UC AND FSFULLR AND GFDL-1.3-no-invariants-only AND \
                 GPL-3.0-or-later AND ISC",
            ),
            (
                "less",
                "(GPL-3.0-or-later OR LicenseRef-Less) AND LicenseRef-Spencer-86 AND \
                 LicenseRef-public-domain AND X11",
            ),
            ("tzdata", "LicenseRef-public-domain"),
        ];
        for (name, expression) in want {
            assert_eq!(got[name].as_deref(), Some(expression), "{name}");
        }
        // Not machine-readable: no assertion.
        for name in [
            "base-files",
            "busybox-static",
            "libc6",
            "python3.11-minimal",
            "unzip",
        ] {
            assert_eq!(got[name], None, "{name}");
        }
        // Every DEP-5 file gives an expression, and every LicenseRef it uses is declared.
        for (name, text) in &files {
            if text.starts_with("Format:") {
                let d = declared(text).unwrap_or_else(|| panic!("{name}"));
                for (id, _) in &d.refs {
                    assert!(d.expression.contains(id.as_str()), "{name}: {id}");
                }
            }
        }
    }
}
