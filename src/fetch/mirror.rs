//! Mirror directories: inputs placed by hand (or by `kiln fetch` on another machine), named by
//! their digest. The names people already use are all accepted: the bare hex, `sha256:<hex>`
//! (OCI's form, awkward on some file systems), `sha256-<hex>` (npm's and SRI's form), and
//! `blobs/sha256/<hex>`, so a kiln cache or an OCI image layout can serve as a mirror as is.
//! A mirror file is never trusted: it is hashed while it is copied into the store.

use std::path::PathBuf;

use crate::digest::Sha256Digest;

/// The mirror files that may hold `digest`, in the order to try them (mirrors in the order
/// given, then the naming forms above). Only existing regular files are returned.
pub(crate) fn candidates(mirrors: &[PathBuf], digest: &Sha256Digest) -> Vec<PathBuf> {
    let hex = digest.hex();
    let names = [
        PathBuf::from(&hex),
        PathBuf::from(format!("sha256:{hex}")),
        PathBuf::from(format!("sha256-{hex}")),
        PathBuf::from("blobs").join("sha256").join(&hex),
    ];
    mirrors
        .iter()
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .filter(|path| path.is_file())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_naming_form_in_mirror_order() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let d = Sha256Digest::of(b"m");
        let hex = d.hex();
        assert!(candidates(&[a.path().into(), b.path().into()], &d).is_empty());
        std::fs::create_dir_all(a.path().join("blobs/sha256")).unwrap();
        for name in [format!("blobs/sha256/{hex}"), format!("sha256-{hex}")] {
            std::fs::write(a.path().join(name), b"m").unwrap();
        }
        for name in [hex.clone(), format!("sha256:{hex}")] {
            std::fs::write(b.path().join(name), b"m").unwrap();
        }
        // A directory with the right name is not a candidate.
        std::fs::create_dir(a.path().join(&hex)).unwrap();
        let found = candidates(&[a.path().into(), b.path().into()], &d);
        let expected = vec![
            a.path().join(format!("sha256-{hex}")),
            a.path().join(format!("blobs/sha256/{hex}")),
            b.path().join(&hex),
            b.path().join(format!("sha256:{hex}")),
        ];
        assert_eq!(found, expected);
    }
}
