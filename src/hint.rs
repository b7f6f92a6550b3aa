//! Hints as data: what a user can do about an error, from the error's own `hint()`, not text
//! split out of its message. The CLI prints each as a `hint:` line after the error's chain.

use std::error::Error;

/// The hint of one error in a chain, when its type has one. A `#[error(transparent)]` wrapper
/// hides the error it wraps from the chain, so each wrapper's `hint()` asks the wrapped one; a
/// boxed `#[source]` is in the chain as its `Box`.
pub fn hint(err: &(dyn Error + 'static)) -> Option<String> {
    macro_rules! from_types {
        ($($ty:ty),* $(,)?) => {$(
            if let Some(e) = err.downcast_ref::<$ty>() {
                return e.hint();
            }
            if let Some(e) = err.downcast_ref::<Box<$ty>>() {
                return e.hint();
            }
        )*};
    }
    from_types!(
        crate::build::BuildError,
        crate::build::RunError,
        crate::store::StoreError,
        crate::image::ImageError,
        crate::platform::PlatformError,
        crate::recipe::RecipeError,
        crate::lock::LockError,
        crate::lock::BaseError,
        crate::deb::lock::DebLockError,
        crate::deb::lockfile::LockfileError,
        crate::deb::generate::GenerateError,
        crate::fetch::FetchError,
        crate::http::HttpError,
        crate::attest::keys::KeyError,
        crate::scan::ScanError,
        crate::scan::import::ImportError,
        crate::update::UpdateError,
        crate::rebuild::RebuildError,
    );
    None
}

/// Every hint of `err` and its causes, in order, once each.
pub fn hints<'a>(chain: impl IntoIterator<Item = &'a (dyn Error + 'static)>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in chain.into_iter().filter_map(hint) {
        if !out.contains(&h) {
            out.push(h);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn hints_come_from_the_error_and_through_transparent_wrappers() {
        let store = StoreError::InsecureRoot {
            path: "/c".into(),
            mode: 0o770,
        };
        assert!(!store.to_string().contains("hint"), "{store}");
        let want = "check its contents, then run `chmod 700 /c`, or choose another cache \
                    directory with --cache";
        assert_eq!(hint(&store).as_deref(), Some(want));
        let build = crate::build::BuildError::Store(store);
        let image = crate::image::ImageError::from(StoreError::ForeignRoot {
            path: "/c".into(),
            owner: 7,
        });
        assert_eq!(
            hints([&build as &(dyn Error + 'static), &image, &build]),
            [want, "choose a cache directory of your own with --cache"]
        );
        assert_eq!(hint(&std::io::Error::other("x")), None);
    }

    #[test]
    fn hints_reach_through_values_and_wrappers_of_other_modules() {
        let head = "[image]\nname = \"x\"\nplatform = \"linux/amd46\"\n";
        let recipe = crate::recipe::Recipe::parse(head, "r.toml", ".").unwrap_err();
        assert_eq!(
            recipe.to_string(),
            "r.toml:3:12: invalid `platform` in [image]: `linux/amd46` names an unknown \
             architecture `amd46`"
        );
        assert!(hint(&recipe)
            .unwrap()
            .starts_with("OCI platforms use Go's GOARCH names: 386, amd64,"));
        let stale = crate::deb::lockfile::LockfileError::Stale {
            path: "r.lock".into(),
            recipe: "r.toml".into(),
            reason: "a new package".into(),
        };
        let build = crate::build::BuildError::Lockfile(stale);
        assert!(!build.to_string().contains("kiln lock"), "{build}");
        assert_eq!(
            hint(&build).as_deref(),
            Some("run `kiln lock r.toml` to resolve it again")
        );
        let boxed = Box::new(crate::attest::keys::KeyError::Decrypt);
        assert_eq!(
            hint(&boxed).as_deref(),
            Some("an encrypted key's password is read from KILN_PASSWORD or COSIGN_PASSWORD")
        );
    }
}
