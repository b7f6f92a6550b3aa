//! `kiln lock`: pin a recipe's `url` inputs (sha256 and size) and its base image (the digest
//! its tag names now) in the recipe's own text, then lock its packages into `RECIPE.lock`.
//!
//! Only the values change: the text is edited in place ([`crate::recipe::pin_input_sha256`]
//! and friends), so comments and layout stay. The caller prints: each pin arrives as a
//! [`LockEvent`] as it is made, and [`lock_recipe`] returns a [`LockOutcome`].

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::deb::lock::{self as deb_lock, DebLockError, PackagesLocked};
use crate::digest::Sha256Digest;
use crate::fetch::{FetchError, Fetcher};
use crate::image::{open_image_with, ImageError, ImageRef, Transports};
use crate::platform::Platform;
use crate::recipe::{self, InputSource, Recipe, RecipeError};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Recipe(#[from] Box<RecipeError>),
    #[error("failed to lock input `{input}` ({url})")]
    Input {
        input: String,
        url: String,
        #[source]
        source: Box<FetchError>,
    },
    #[error("failed to lock base image `{reference}`")]
    Base {
        reference: String,
        #[source]
        source: BaseError,
    },
    #[error(transparent)]
    Pin(#[from] recipe::LockError),
    #[error(transparent)]
    Write(#[from] ImageError),
    #[error(transparent)]
    Packages(#[from] Box<DebLockError>),
}

impl LockError {
    /// What the user can do about it, when kiln knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Recipe(e) => e.hint(),
            Self::Write(e) => e.hint(),
            Self::Packages(e) => e.hint(),
            _ => None,
        }
    }
}

impl From<RecipeError> for LockError {
    fn from(e: RecipeError) -> Self {
        LockError::Recipe(Box::new(e))
    }
}

impl From<DebLockError> for LockError {
    fn from(e: DebLockError) -> Self {
        LockError::Packages(Box::new(e))
    }
}

/// Why a base image could not be pinned.
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    #[error("resolving a tag needs the network, and --offline was given")]
    Offline,
    #[error("a docker-archive base cannot be pinned: it has no manifest digest")]
    DockerArchive,
    #[error(transparent)]
    Image(#[from] ImageError),
}

impl BaseError {
    /// What the user can do about it, when kiln knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::DockerArchive => Some("use oci-archive: or oci:".to_string()),
            Self::Image(e) => e.hint(),
            _ => None,
        }
    }
}

impl From<crate::registry::RegistryError> for BaseError {
    fn from(e: crate::registry::RegistryError) -> Self {
        BaseError::Image(e.into())
    }
}

/// One value `kiln lock` wrote into the recipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "pin", rename_all = "kebab-case")]
pub enum Pin {
    /// `[inputs.NAME] sha256`.
    InputSha256 { input: String, sha256: Sha256Digest },
    /// `[inputs.NAME] size`, in bytes.
    InputSize { input: String, size: u64 },
    /// `base`, with the digest its tag names now.
    Base { reference: ImageRef },
}

/// Progress of [`lock_recipe`], in order.
#[derive(Debug)]
pub enum LockEvent<'a> {
    /// A value was pinned (the recipe is written after the last of them).
    Pinned(&'a Pin),
    /// Progress of the packages' lock.
    Packages(deb_lock::LockEvent<'a>),
}

/// How to lock.
pub struct LockOptions<'a> {
    /// Re-resolve what is already pinned (tags, URLs, package sets) to what it names now.
    pub update: bool,
    /// The clock (unix seconds) for the repositories' key, signature and `Valid-Until` expiry.
    pub now: i64,
    /// Fetches `url` inputs and repository indexes (its `offline` is honoured for tags too).
    pub fetcher: &'a Fetcher,
    /// The registry and layout access for the base, built only when the base needs it (a
    /// recipe without a base never reads the registry's credentials).
    pub transports: &'a dyn Fn() -> Result<Transports, ImageError>,
}

/// What [`lock_recipe`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockOutcome {
    pub recipe: PathBuf,
    /// Every value written into the recipe, in order.
    pub pins: Vec<Pin>,
    /// The packages' lock file, when the recipe installs packages.
    pub packages: Option<PackagesLocked>,
}

/// Pins the recipe at `path` in place (see the module docs), then locks its packages.
pub fn lock_recipe(
    path: &Path,
    options: &LockOptions<'_>,
    progress: &mut dyn FnMut(LockEvent<'_>),
) -> Result<LockOutcome, LockError> {
    let text = fs_err::read_to_string(path)?;
    let parsed = Recipe::parse_unpinned(&text, path, recipe::recipe_dir(path))?;
    let fetcher = options.fetcher;
    let mut new_text = text.clone();
    let mut pins = Vec::new();
    let mut pin = |pin: Pin, pins: &mut Vec<Pin>| {
        progress(LockEvent::Pinned(&pin));
        pins.push(pin);
    };
    for (name, input) in &parsed.inputs {
        let InputSource::Url { url, sha256, size } = &input.source else {
            continue;
        };
        let failed = |source| LockError::Input {
            input: name.clone(),
            url: url.clone(),
            source: Box::new(source),
        };
        let (digest, new_size) = match sha256 {
            Some(_) if size.is_some() && !options.update => continue,
            // Pinned before sizes were recorded: the size of the verified bytes.
            Some(pinned) if !options.update => {
                let path = fetcher.fetch(url, pinned, name).map_err(failed)?;
                (*pinned, fs_err::metadata(path)?.len())
            }
            _ => fetcher.resolve_sized(url, name).map_err(failed)?,
        };
        if sha256.as_ref() != Some(&digest) {
            new_text = recipe::pin_input_sha256(&new_text, name, &digest)?;
            pin(
                Pin::InputSha256 {
                    input: name.clone(),
                    sha256: digest,
                },
                &mut pins,
            );
        }
        if *size != Some(new_size) {
            new_text = recipe::pin_input_size(&new_text, name, new_size)?;
            pin(
                Pin::InputSize {
                    input: name.clone(),
                    size: new_size,
                },
                &mut pins,
            );
        }
    }
    if let Some(base) = &parsed.base {
        if base.digest.is_none() || options.update {
            let pinned = resolve_base(
                &base.reference,
                &parsed.dir,
                &parsed.image.platform,
                options,
            )
            .map_err(|source| LockError::Base {
                reference: base.reference.to_string(),
                source,
            })?;
            if let Some(pinned) = pinned.filter(|p| *p != base.reference) {
                new_text = recipe::pin_base_ref(&new_text, &pinned)?;
                pin(Pin::Base { reference: pinned }, &mut pins);
            }
        }
    }
    if new_text != text {
        crate::image::layout::write_atomic(path, new_text.as_bytes())?;
    }
    let packages = deb_lock::update(
        &parsed,
        fetcher,
        options.update,
        options.now,
        &mut |event| progress(LockEvent::Packages(event)),
    )?;
    Ok(LockOutcome {
        recipe: path.to_path_buf(),
        pins,
        packages,
    })
}

/// The base reference pinned to what its tag names now (`None`: nothing to resolve, e.g. a
/// digest-only reference). Everything but the digest is kept (see [`ImageRef::pinned`]).
/// A relative `oci:` path is relative to `recipe_dir`.
pub fn resolve_base(
    reference: &ImageRef,
    recipe_dir: &Path,
    platform: &Platform,
    options: &LockOptions<'_>,
) -> Result<Option<ImageRef>, BaseError> {
    let digest = match reference {
        ImageRef::Docker(r) => {
            if r.tag().is_none() && r.digest().is_some() {
                return Ok(None);
            }
            if options.fetcher.offline {
                return Err(BaseError::Offline);
            }
            let ctx = (options.transports)()?;
            ctx.client.resolve_tag(r.repository(), r.tag_or_latest())?
        }
        ImageRef::Oci { path, tag, .. } | ImageRef::OciArchive { path, tag, .. } => {
            if tag.is_none() && reference.is_pinned() {
                return Ok(None);
            }
            let path = if path.is_absolute() {
                path.clone()
            } else {
                recipe_dir.join(path)
            };
            let local = match reference {
                ImageRef::Oci { .. } => ImageRef::Oci {
                    path,
                    tag: tag.clone(),
                    digest: None,
                },
                _ => ImageRef::OciArchive {
                    path,
                    tag: tag.clone(),
                    digest: None,
                },
            };
            let ctx = (options.transports)()?;
            open_image_with(&local, Some(platform), &ctx)?.resolved_digest
        }
        ImageRef::DockerArchive { .. } => return Err(BaseError::DockerArchive),
    };
    Ok(reference.pinned(digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// A `url` input is pinned (sha256, then size) once, the recipe's comments kept; a second
    /// lock finds nothing to pin; the base is left alone when the recipe has none.
    #[test]
    fn lock_recipe_reports_each_pin_once_and_then_none() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("blob.bin");
        fs_err::write(&data, "bytes").unwrap();
        let recipe = dir.path().join("r.toml");
        let text = format!(
            "[image]\nname = \"e\"\n# keep me\n[inputs.x]\nurl = \"file://{}\"\n[[layer]]\n\
             [[layer.step]]\nwrite = \"/hello\"\ncontent = \"hi\\n\"\n",
            data.display()
        );
        fs_err::write(&recipe, &text).unwrap();
        let fetcher = Fetcher::new(Store::open(&dir.path().join("cache")).unwrap());
        let transports = || -> Result<Transports, ImageError> { panic!("no base to resolve") };
        let options = LockOptions {
            update: false,
            now: 0,
            fetcher: &fetcher,
            transports: &transports,
        };
        let mut seen = Vec::new();
        let outcome = lock_recipe(&recipe, &options, &mut |event| {
            if let LockEvent::Pinned(pin) = event {
                seen.push(pin.clone());
            }
        })
        .unwrap();
        let sha256 = Sha256Digest::of(b"bytes");
        let want = [
            Pin::InputSha256 {
                input: "x".into(),
                sha256,
            },
            Pin::InputSize {
                input: "x".into(),
                size: 5,
            },
        ];
        assert_eq!(outcome.pins, want);
        assert_eq!(seen, want, "each pin is reported as it is made");
        assert_eq!(outcome.packages, None);
        let locked = fs_err::read_to_string(&recipe).unwrap();
        assert!(
            locked.contains(&format!("sha256 = \"{}\"", sha256.hex()))
                && locked.contains("size = 5")
                && locked.contains("# keep me"),
            "{locked}"
        );
        let again = lock_recipe(&recipe, &options, &mut |_| {}).unwrap();
        assert_eq!(again.pins, []);
        assert_eq!(fs_err::read_to_string(&recipe).unwrap(), locked);
    }

    /// An `oci:DIR:TAG` base whose tag names an index is pinned to the index digest, with the
    /// path and tag kept as written; the recipe's platform must be served by the index, and a
    /// second lock finds nothing to pin.
    #[test]
    fn an_oci_base_tag_is_pinned_to_the_index_it_names() {
        use crate::image::layout::descriptor;
        use crate::image::Layout;
        use crate::media;

        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(&dir.path().join("base")).unwrap();
        let config = br#"{"architecture":"arm64","variant":"v8","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let config_digest = layout.put_blob(config).unwrap();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest.to_string(),
                "size": config.len(),
            },
            "layers": [],
        })
        .to_string();
        let manifest_digest = layout.put_blob(manifest.as_bytes()).unwrap();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_INDEX,
            "manifests": [{
                "mediaType": media::OCI_MANIFEST,
                "digest": manifest_digest.to_string(),
                "size": manifest.len(),
                "platform": {"os": "linux", "architecture": "arm64"},
            }],
        })
        .to_string();
        let index_digest = layout.put_blob(index.as_bytes()).unwrap();
        let mut entry = descriptor(media::OCI_INDEX, &index_digest, index.len() as u64);
        entry.set_annotations(Some(
            [(
                "org.opencontainers.image.ref.name".to_string(),
                "1".to_string(),
            )]
            .into(),
        ));
        layout.write_index(vec![entry]).unwrap();

        let recipe = dir.path().join("r.toml");
        let text = |platform: &str| {
            format!(
                "[image]\nname = \"e\"\nplatform = \"{platform}\"\n[base]\nref = \"oci:base:1\"\n\
                 [[layer]]\n[[layer.step]]\nwrite = \"/hello\"\ncontent = \"hi\\n\"\n"
            )
        };
        let store = Store::open(&dir.path().join("cache")).unwrap();
        let fetcher = Fetcher::new(store.clone());
        let transports = || {
            Transports::new(
                store.clone(),
                true,
                &crate::image::remote::RegistryOptions::default(),
                None,
            )
        };
        let options = LockOptions {
            update: false,
            now: 0,
            fetcher: &fetcher,
            transports: &transports,
        };
        let lock = || lock_recipe(&recipe, &options, &mut |_| {});

        fs_err::write(&recipe, text("linux/amd64")).unwrap();
        let err = lock().unwrap_err();
        assert!(
            matches!(&err, LockError::Base { reference, source: BaseError::Image(ImageError::NoPlatform { .. }) }
                if reference == "oci:base:1"),
            "{err:?}"
        );

        // linux/arm64/v8 is served by the index's variant-less linux/arm64 entry.
        fs_err::write(&recipe, text("linux/arm64/v8")).unwrap();
        let pinned = format!("oci:base:1@{index_digest}");
        let outcome = lock().unwrap();
        assert_eq!(
            outcome.pins,
            [Pin::Base {
                reference: pinned.parse().unwrap()
            }]
        );
        assert_eq!(
            fs_err::read_to_string(&recipe).unwrap(),
            text("linux/arm64/v8").replace("oci:base:1", &pinned)
        );
        assert_eq!(lock().unwrap().pins, []);
    }

    #[test]
    fn a_docker_archive_base_cannot_be_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let recipe = dir.path().join("r.toml");
        fs_err::write(
            &recipe,
            "[image]\nname = \"e\"\n[base]\nref = \"docker-archive:b.tar\"\n[[layer]]\n[[layer.step]]\n\
             write = \"/hello\"\ncontent = \"hi\\n\"\n",
        )
        .unwrap();
        let fetcher = Fetcher::new(Store::open(&dir.path().join("cache")).unwrap());
        let transports = || -> Result<Transports, ImageError> { panic!("nothing to open") };
        let options = LockOptions {
            update: false,
            now: 0,
            fetcher: &fetcher,
            transports: &transports,
        };
        let err = lock_recipe(&recipe, &options, &mut |_| {}).unwrap_err();
        assert!(
            matches!(&err, LockError::Base { reference, source: BaseError::DockerArchive }
                if reference == "docker-archive:b.tar"),
            "{err:?}"
        );
    }
}
