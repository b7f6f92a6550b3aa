//! Relationship fields (`Depends`, `Pre-Depends`, `Provides`): comma-separated groups of
//! `|`-separated alternatives, each `name[:arch] [(op version)]` (deb-control(5)).
//! Architecture restrictions (`[amd64]`) and build profiles (`<!nocheck>`) belong to source
//! packages; they are tolerated and dropped here.

use std::cmp::Ordering;

use super::version::{Version, VersionError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "<<" => Op::Lt,
            "<=" | "<" => Op::Le,
            "=" => Op::Eq,
            ">=" | ">" => Op::Ge,
            ">>" => Op::Gt,
            _ => return None,
        })
    }

    pub fn allows(self, ord: Ordering) -> bool {
        match self {
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
            Op::Eq => ord == Ordering::Equal,
            Op::Ge => ord != Ordering::Less,
            Op::Gt => ord == Ordering::Greater,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">>",
        }
    }
}

/// One alternative: a package name, an optional architecture qualifier, an optional version
/// constraint.
#[derive(Debug, Clone)]
pub struct Relation {
    pub name: String,
    pub arch: Option<String>,
    pub constraint: Option<(Op, Version)>,
}

impl Relation {
    /// Whether `version` satisfies the constraint (always, without one).
    pub fn allows(&self, version: &Version) -> bool {
        match &self.constraint {
            None => true,
            Some((op, want)) => op.allows(version.cmp(want)),
        }
    }
}

impl std::fmt::Display for Relation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        if let Some(a) = &self.arch {
            write!(f, ":{a}")?;
        }
        if let Some((op, v)) = &self.constraint {
            write!(f, " ({} {v})", op.as_str())?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelationError {
    #[error("cannot read the relation `{0}`")]
    Syntax(String),
    #[error("bad version in the relation `{0}`")]
    Version(String, #[source] VersionError),
}

/// Parses a field into groups of alternatives.
pub fn parse_groups(field: &str) -> Result<Vec<Vec<Relation>>, RelationError> {
    let mut groups = Vec::new();
    for group in field.split(',') {
        if group.trim().is_empty() {
            continue;
        }
        let alternatives = group
            .split('|')
            .map(parse_one)
            .collect::<Result<Vec<_>, _>>()?;
        groups.push(alternatives);
    }
    Ok(groups)
}

fn parse_one(text: &str) -> Result<Relation, RelationError> {
    let syntax = || RelationError::Syntax(text.trim().to_string());
    // Drop `[arch list]` and `<profiles>`.
    let mut clean = String::new();
    let mut in_parens = false;
    let mut skip_to = None;
    for c in text.chars() {
        if let Some(end) = skip_to {
            if c == end {
                skip_to = None;
            }
            continue;
        }
        match c {
            '[' if !in_parens => skip_to = Some(']'),
            '<' if !in_parens => skip_to = Some('>'),
            _ => {
                in_parens = (in_parens || c == '(') && c != ')';
                clean.push(c);
            }
        }
    }
    let clean = clean.trim();
    let (head, constraint) = match clean.split_once('(') {
        Some((head, rest)) => {
            let inner = rest.trim().strip_suffix(')').ok_or_else(syntax)?.trim();
            let split = inner
                .find(|c: char| !matches!(c, '<' | '>' | '='))
                .ok_or_else(syntax)?;
            let op = Op::parse(&inner[..split]).ok_or_else(syntax)?;
            let v = Version::parse(inner[split..].trim())
                .map_err(|e| RelationError::Version(text.trim().to_string(), e))?;
            (head.trim(), Some((op, v)))
        }
        None => (clean, None),
    };
    let (name, arch) = match head.split_once(':') {
        Some((n, a)) => (n, Some(a.to_string())),
        None => (head, None),
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(syntax());
    }
    Ok(Relation {
        name: name.to_string(),
        arch,
        constraint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_groups_alternatives_constraints_and_qualifiers() {
        let g = parse_groups(
            "libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0, python3:any, foo [amd64] <!nocheck>",
        )
        .unwrap();
        assert_eq!(g.len(), 4);
        assert_eq!(g[0][0].to_string(), "libc6 (>= 2.34)");
        assert_eq!(g[1].len(), 2);
        assert_eq!(g[1][1].name, "debconf-2.0");
        assert_eq!(g[2][0].arch.as_deref(), Some("any"));
        assert_eq!(g[3][0].name, "foo");
        assert!(g[0][0].allows(&Version::parse("2.36-9").unwrap()));
        assert!(!g[0][0].allows(&Version::parse("2.31").unwrap()));
    }

    #[test]
    fn refuses_garbage() {
        assert!(parse_groups("foo (>= )").is_err());
        assert!(parse_groups("foo (~~ 1)").is_err());
        assert!(parse_groups("a b").is_err());
    }
}
