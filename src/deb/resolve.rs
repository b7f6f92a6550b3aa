//! The dependency closure of a package request, for one architecture.
//!
//! Deterministic and greedy, roughly as apt decides without user preferences: requests are
//! taken in sorted order; each `Pre-Depends` and `Depends` group is satisfied by what is
//! already chosen if it can be, otherwise by its first satisfiable alternative in written
//! order (a real package at its newest allowed version, else a package providing the name:
//! the provider of highest `Priority`, then the alphabetically first, at its newest version). A package is chosen once, so
//! dependency loops end. Dependencies on `Essential: yes` packages are not followed (dpkg
//! treats essential packages as always present; distroless images leave them out): list one in
//! `packages` to get it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::packages::{Package, PackageIndex};
use super::relation::{parse_groups, Relation, RelationError};
use super::version::Version;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "package `{name}` is not in the index for {arch}{}",
        if providers.is_empty() { String::new() } else {
            format!("; it is a virtual package provided by {}: list one of them", providers.join(", "))
        }
    )]
    NotFound {
        name: String,
        arch: String,
        providers: Vec<String>,
    },
    #[error(
        "cannot satisfy `{relation}` of {package} {version} ({arch}): no package in the index \
         matches any alternative"
    )]
    Unsatisfiable {
        package: String,
        version: String,
        arch: String,
        relation: String,
    },
    #[error(
        "{package} {version} needs `{relation}`, but {chosen} {chosen_version} is already \
         chosen"
    )]
    Conflict {
        package: String,
        version: String,
        relation: String,
        chosen: String,
        chosen_version: String,
    },
    #[error("package {package} has an unreadable relationship field")]
    Relation {
        package: String,
        #[source]
        source: RelationError,
    },
}

/// A virtual name's provider: the package and the version it provides, if versioned.
#[derive(Debug, Clone)]
struct Provider {
    package: String,
    version: Version,
    provided: Option<Version>,
    /// [`priority_rank`] of the providing package.
    rank: u8,
}

/// `Priority` as apt weighs it when it must pick among providers: required first.
fn priority_rank(priority: &str) -> u8 {
    match priority {
        "required" => 0,
        "important" => 1,
        "standard" => 2,
        "optional" => 3,
        "extra" => 4,
        _ => 5,
    }
}

/// Resolves `requested` against `index` for `arch` (packages of `arch` and `all`). The result
/// is sorted by name.
pub fn resolve(
    index: &PackageIndex,
    arch: &str,
    requested: &BTreeSet<String>,
) -> Result<Vec<Package>, ResolveError> {
    let usable = |p: &Package| p.architecture == arch || p.architecture == "all";
    let mut providers: BTreeMap<String, Vec<Provider>> = BTreeMap::new();
    for list in index.by_name.values() {
        for p in list.iter().filter(|p| usable(p)) {
            if p.provides.is_empty() {
                continue;
            }
            let groups = parse_groups(&p.provides).map_err(|source| ResolveError::Relation {
                package: p.name.clone(),
                source,
            })?;
            for rel in groups.into_iter().flatten() {
                let entry = providers.entry(rel.name).or_default();
                entry.push(Provider {
                    package: p.name.clone(),
                    version: p.version.clone(),
                    provided: rel.constraint.map(|(_, v)| v),
                    rank: priority_rank(&p.priority),
                });
            }
        }
    }
    let mut chosen: BTreeMap<String, Package> = BTreeMap::new();
    let mut queue = VecDeque::new();
    for name in requested {
        let candidate = index
            .by_name
            .get(name)
            .and_then(|list| list.iter().find(|p| usable(p)));
        let Some(p) = candidate else {
            let mut names: Vec<String> = providers_of(&providers, name)
                .map(|pr| pr.package.clone())
                .collect();
            names.sort();
            names.dedup();
            return Err(ResolveError::NotFound {
                name: name.clone(),
                arch: arch.to_string(),
                providers: names,
            });
        };
        chosen.insert(p.name.clone(), p.clone());
        queue.push_back(p.name.clone());
    }
    while let Some(name) = queue.pop_front() {
        let package = chosen[&name].clone();
        let mut groups = Vec::new();
        for field in [&package.pre_depends, &package.depends] {
            groups.extend(
                parse_groups(field).map_err(|source| ResolveError::Relation {
                    package: package.name.clone(),
                    source,
                })?,
            );
        }
        for group in groups {
            if group.iter().any(|r| satisfied(r, &chosen, &providers)) {
                continue;
            }
            let mut picked = None;
            let mut clash = None;
            for rel in &group {
                if rel
                    .arch
                    .as_deref()
                    .is_some_and(|a| !matches!(a, "any" | "native") && a != arch)
                {
                    continue;
                }
                // A real package of that name.
                if let Some(list) = index.by_name.get(&rel.name) {
                    if let Some(existing) = chosen.get(&rel.name) {
                        clash.get_or_insert((rel.clone(), existing.clone()));
                        continue;
                    }
                    if let Some(p) = list.iter().find(|p| usable(p) && rel.allows(&p.version)) {
                        picked = Some(p.clone());
                        break;
                    }
                }
                // A provider of that name.
                let mut candidates: Vec<&Provider> = providers_of(&providers, &rel.name)
                    .filter(|pr| match (&rel.constraint, &pr.provided) {
                        (None, _) => true,
                        (Some(_), None) => false,
                        (Some(_), Some(v)) => rel.allows(v),
                    })
                    .collect();
                candidates.sort_by(|a, b| {
                    (a.rank, &a.package)
                        .cmp(&(b.rank, &b.package))
                        .then_with(|| b.version.cmp(&a.version))
                });
                if let Some(pr) = candidates.first() {
                    let list = &index.by_name[&pr.package];
                    if let Some(p) = list.iter().find(|p| usable(p) && p.version == pr.version) {
                        picked = Some(p.clone());
                        break;
                    }
                }
            }
            match picked {
                Some(p) if p.essential && !requested.contains(&p.name) => {}
                Some(p) => {
                    if chosen.contains_key(&p.name) {
                        continue;
                    }
                    queue.push_back(p.name.clone());
                    chosen.insert(p.name.clone(), p);
                }
                None => {
                    let relation = group
                        .iter()
                        .map(Relation::to_string)
                        .collect::<Vec<_>>()
                        .join(" | ");
                    return Err(match clash {
                        Some((_, existing)) => ResolveError::Conflict {
                            package: package.name.clone(),
                            version: package.version.to_string(),
                            relation,
                            chosen: existing.name.clone(),
                            chosen_version: existing.version.to_string(),
                        },
                        None => ResolveError::Unsatisfiable {
                            package: package.name.clone(),
                            version: package.version.to_string(),
                            arch: arch.to_string(),
                            relation,
                        },
                    });
                }
            }
        }
    }
    Ok(chosen.into_values().collect())
}

fn providers_of<'a>(
    providers: &'a BTreeMap<String, Vec<Provider>>,
    name: &str,
) -> impl Iterator<Item = &'a Provider> {
    providers.get(name).into_iter().flatten()
}

/// Whether something already chosen satisfies `rel`.
fn satisfied(
    rel: &Relation,
    chosen: &BTreeMap<String, Package>,
    providers: &BTreeMap<String, Vec<Provider>>,
) -> bool {
    if chosen
        .get(&rel.name)
        .is_some_and(|p| rel.allows(&p.version))
    {
        return true;
    }
    providers_of(providers, &rel.name).any(|pr| {
        chosen
            .get(&pr.package)
            .is_some_and(|p| p.version == pr.version)
            && match (&rel.constraint, &pr.provided) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(_), Some(v)) => rel.allows(v),
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deb::packages::read_packages;

    /// An index from `name version arch [Field: value]...` lines.
    fn index(spec: &str) -> PackageIndex {
        let mut text = String::new();
        for line in spec.lines().filter(|l| !l.trim().is_empty()) {
            let mut parts = line.trim().splitn(4, ' ');
            let (n, v, a) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            text += &format!(
                "Package: {n}\nVersion: {v}\nArchitecture: {a}\nFilename: pool/{n}_{v}.deb\n\
                 Size: 1\nSHA256: {}\n",
                "0".repeat(64)
            );
            for field in parts
                .next()
                .unwrap_or("")
                .split(';')
                .filter(|f| !f.is_empty())
            {
                text += field.trim();
                text += "\n";
            }
            text += "\n";
        }
        let mut idx = PackageIndex::default();
        read_packages(text.as_bytes(), "test", |p| idx.add(p)).unwrap();
        idx
    }

    fn names(r: &[Package]) -> Vec<String> {
        r.iter()
            .map(|p| format!("{}={}", p.name, p.version))
            .collect()
    }

    fn req(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn follows_depends_pre_depends_alternatives_and_virtuals() {
        let idx = index(
            "app 1 amd64 Depends: libfoo (>= 2) | libbar, mta;Pre-Depends: init-helper
             libfoo 1 amd64
             libfoo 3 amd64 Depends: common
             libfoo 2 amd64
             libbar 1 amd64
             common 1 all
             init-helper 1 amd64
             postfix 1 amd64 Provides: mta;Priority: standard
             exim 1 amd64 Provides: mta;Priority: optional
             aaa-mta 1 amd64 Provides: mta
             other 1 i386",
        );
        let got = resolve(&idx, "amd64", &req(&["app"])).unwrap();
        assert_eq!(
            names(&got),
            [
                "app=1",
                "common=1",
                "init-helper=1",
                "libfoo=3",
                "postfix=1"
            ]
        );
    }

    #[test]
    fn versioned_provides_and_loops() {
        let idx = index(
            "a 1 amd64 Depends: v (>= 2), b
             b 1 amd64 Depends: a
             p1 1 amd64 Provides: v
             p2 1 amd64 Provides: v (= 2)",
        );
        let got = resolve(&idx, "amd64", &req(&["a"])).unwrap();
        assert_eq!(names(&got), ["a=1", "b=1", "p2=1"]);
    }

    #[test]
    fn essential_is_left_out_unless_requested() {
        let idx = index(
            "a 1 amd64 Depends: perl-base
             perl-base 1 amd64 Essential: yes",
        );
        assert_eq!(
            names(&resolve(&idx, "amd64", &req(&["a"])).unwrap()),
            ["a=1"]
        );
        assert_eq!(
            names(&resolve(&idx, "amd64", &req(&["a", "perl-base"])).unwrap()),
            ["a=1", "perl-base=1"]
        );
    }

    #[test]
    fn refuses_missing_and_unsatisfiable() {
        let idx = index(
            "a 1 amd64 Depends: b (>= 2)
             b 1 amd64
             c 1 amd64 Provides: virt",
        );
        let e = resolve(&idx, "amd64", &req(&["nope"])).unwrap_err();
        assert!(matches!(e, ResolveError::NotFound { .. }), "{e}");
        let e = resolve(&idx, "amd64", &req(&["virt"])).unwrap_err();
        assert!(e.to_string().contains("provided by c"), "{e}");
        let e = resolve(&idx, "amd64", &req(&["a"])).unwrap_err();
        assert!(e.to_string().contains("b (>= 2)"), "{e}");
    }
}
