//! Hints as data: what a user can do about an error, from the error's own `hint()`, not text
//! split out of its message. The CLI prints each as a `hint:` line after the error's chain.

use std::error::Error;

/// The hint of one error in a chain, when its type has one.
pub fn hint(err: &(dyn Error + 'static)) -> Option<String> {
    if let Some(e) = err.downcast_ref::<crate::build::BuildError>() {
        return e.hint();
    }
    if let Some(e) = err.downcast_ref::<crate::store::StoreError>() {
        return e.hint();
    }
    if let Some(e) = err.downcast_ref::<crate::image::ImageError>() {
        return e.hint();
    }
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
}
