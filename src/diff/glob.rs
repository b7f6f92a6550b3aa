//! `--ignore` patterns: shell-style globs over absolute image paths.
//!
//! A pattern is matched component by component against a path of the applied filesystem
//! (`/var/log/dpkg.log`): `*` matches any run of characters within one component, `?` one
//! character, and a `**` component any number of components, including none, so `/var/log/**`
//! drops `/var/log` itself and everything below it. A pattern without a leading `/` is
//! anchored at the root all the same. There are no character classes: a bracket is literal.

/// A compiled `--ignore` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    text: String,
    components: Vec<String>,
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        let components = pattern
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_string)
            .collect();
        Self {
            text: pattern.to_string(),
            components,
        }
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `path` (absolute or relative to the image root) matches.
    pub fn matches(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let pattern: Vec<&str> = self.components.iter().map(String::as_str).collect();
        match_components(&pattern, &parts)
    }
}

fn match_components(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| match_components(rest, &path[skip..])),
        Some((first, rest)) => match path.split_first() {
            Some((head, tail)) => {
                match_component(first.as_bytes(), head.as_bytes()) && match_components(rest, tail)
            }
            None => false,
        },
    }
}

/// `*` and `?` within one component (iterative, with backtracking to the last `*`).
fn match_component(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn matches_like_a_shell_with_double_star() {
        let cases: &[(&str, &str, bool)] = &[
            ("/var/log/**", "/var/log", true),
            ("/var/log/**", "/var/log/dpkg.log", true),
            ("/var/log/**", "/var/log/apt/history.log", true),
            ("/var/log/**", "/var/logs/x", false),
            ("/var/log/**", "/var", false),
            ("var/log/*", "/var/log/x", true),
            ("/var/log/*", "/var/log/apt/x", false),
            ("/etc/*.conf", "/etc/ld.so.conf", true),
            ("/etc/*.conf", "/etc/ld.so.conf.d", false),
            ("/**/*.pyc", "/usr/lib/a/b.pyc", true),
            ("/**/*.pyc", "/b.pyc", true),
            ("/**/*.pyc", "/b.py", false),
            ("/tmp/?", "/tmp/a", true),
            ("/tmp/?", "/tmp/ab", false),
            ("/a*b*c", "/aXXbYYc", true),
            ("/a*b*c", "/aXXbYY", false),
            ("/[x]", "/[x]", true),
            ("/**", "/anything/at/all", true),
        ];
        for (pattern, path, want) in cases {
            assert_eq!(
                Glob::new(pattern).matches(path),
                *want,
                "{pattern} vs {path}"
            );
        }
    }
}
