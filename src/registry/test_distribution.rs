//! Integration tests against a real CNCF distribution registry (Debian's `docker-registry`),
//! started per test on 127.0.0.1 and a free port with its own storage directory. The binary
//! missing fails the test.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use oci_spec::image::{DescriptorBuilder, MediaType};

use super::error::Result;
use super::referrers::referrers_tag;
use super::*;
use crate::digest::Sha256Digest;
use crate::media::*;
use crate::platform::Platform;
use crate::testing::registry::LocalRegistry;

const EMPTY_JSON_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

impl Client {
    /// The image manifest for `platform`: `reference` may name an image manifest directly or an
    /// index, in which case the platform's entry is fetched by digest and verified. Returns the
    /// image manifest and, when there was one, the index. The registry half of what
    /// `image::remote::open_registry` does through the store, for these tests.
    pub(super) fn pull_for_platform(
        &self,
        repo: &Repository,
        reference: &str,
        platform: &Platform,
    ) -> Result<(PulledManifest, Option<PulledManifest>)> {
        let top = self.get_manifest(repo, reference, ALL_MANIFEST_TYPES)?;
        if !is_index(&top.media_type) {
            return Ok((top, None));
        }
        let entry = select_platform(&top, platform)?;
        if entry.digest == top.digest {
            return Err(RegistryError::SelfReferencingIndex { digest: top.digest });
        }
        let child = match self.get_manifest(repo, &entry.digest.to_string(), IMAGE_MANIFEST_TYPES) {
            Err(RegistryError::UnacceptedMediaType { media_type, .. }) if is_index(&media_type) => {
                return Err(RegistryError::NestedIndex {
                    index: top.digest,
                    child: entry.digest,
                })
            }
            other => other?,
        };
        Ok((child, Some(top)))
    }
}

fn repo_of(reg: &LocalRegistry, name: &str) -> Repository {
    Repository::new(&reg.host, name).unwrap()
}

fn client(auth_files: AuthFiles, chunk_size: u64) -> Client {
    Client::new(ClientOptions {
        tls_verify: true,
        auth_files,
        progress: None,
        chunk_size,
    })
    .unwrap()
}

fn bytes(seed: u32, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

struct Image {
    blobs: Vec<Vec<u8>>,
    manifest: Vec<u8>,
}

fn image(seed: u32) -> Image {
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"seed":{seed}}}"#
    );
    let blobs = vec![
        config.into_bytes(),
        bytes(seed, 50_000),
        bytes(seed + 1, 300_000),
    ];
    let desc = |mt: &str, b: &[u8]| {
        format!(
            r#"{{"mediaType":"{mt}","digest":"{}","size":{}}}"#,
            Sha256Digest::of(b),
            b.len()
        )
    };
    let layer = OCI_LAYER_GZIP;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{},"layers":[{},{}]}}"#,
        desc(OCI_CONFIG, &blobs[0]),
        desc(layer, &blobs[1]),
        desc(layer, &blobs[2]),
    );
    Image {
        blobs,
        manifest: manifest.into_bytes(),
    }
}

fn push_image(c: &Client, repo: &Repository, img: &Image, tag: &str) -> Sha256Digest {
    let pushed = run_parallel(img.blobs.clone(), DEFAULT_PARALLELISM, |b| {
        c.put_blob(repo, &Sha256Digest::of(&b), b.len() as u64, &mut &b[..])
    })
    .unwrap();
    assert!(
        pushed.iter().all(|p| *p == BlobPush::Uploaded),
        "{pushed:?}"
    );
    c.put_manifest(repo, tag, OCI_MANIFEST, &img.manifest)
        .unwrap()
}

#[test]
fn real_registry_push_pull_mount_tags_and_referrers() {
    let reg = LocalRegistry::start(&[]);
    // 64 KiB chunks: the 300 kB layer goes up in 5 PATCHes, the others in one PUT.
    let c = client(AuthFiles::none(), 64 << 10);
    let repo = repo_of(&reg, "kiln/app");
    let img = image(1);
    let digest = push_image(&c, &repo, &img, "v1");
    assert_eq!(digest, Sha256Digest::of(&img.manifest));

    // Existing blobs are not uploaded again.
    for b in &img.blobs {
        assert_eq!(
            c.put_blob(&repo, &Sha256Digest::of(b), b.len() as u64, &mut &b[..])
                .unwrap(),
            BlobPush::Existed
        );
    }

    // Pull back by digest and by tag; every byte verified.
    let m = c
        .get_manifest(&repo, &digest.to_string(), IMAGE_MANIFEST_TYPES)
        .unwrap();
    assert_eq!(
        (m.media_type.as_str(), &m.bytes, m.digest),
        (OCI_MANIFEST, &img.manifest, digest)
    );
    assert_eq!(c.resolve_tag(&repo, "v1").unwrap(), digest);
    let pulled = run_parallel(img.blobs.clone(), 3, |b| {
        let mut sink = Vec::new();
        c.get_blob(
            &repo,
            &Sha256Digest::of(&b),
            Some(b.len() as u64),
            &mut sink,
        )
        .map(|_| sink)
    })
    .unwrap();
    assert_eq!(pulled, img.blobs);

    // An index: the platform's manifest is selected and fetched by digest.
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{digest}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
        img.manifest.len()
    );
    let index_digest = c
        .put_manifest(&repo, "multi", OCI_INDEX, index.as_bytes())
        .unwrap();
    let (child, parent) = c
        .pull_for_platform(&repo, "multi", &"linux/amd64".parse().unwrap())
        .unwrap();
    assert_eq!(
        (child.digest, parent.map(|p| p.digest)),
        (digest, Some(index_digest))
    );
    let err = c
        .pull_for_platform(&repo, "multi", &"linux/arm64".parse().unwrap())
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::NoMatchingPlatform { .. }),
        "{err}"
    );

    // Cross-repository mount within the registry; a blob it does not have is not mounted.
    let other = repo_of(&reg, "kiln/other");
    let layer = Sha256Digest::of(&img.blobs[2]);
    assert!(!c.blob_exists(&other, &layer).unwrap());
    assert!(c.mount_blob(&repo, &other, &layer).unwrap());
    assert!(c.blob_exists(&other, &layer).unwrap());
    assert!(!c
        .mount_blob(&repo, &other, &Sha256Digest::of(b"absent"))
        .unwrap());

    assert_eq!(
        c.list_tags(&repo).unwrap(),
        vec!["multi".to_string(), "v1".to_string()]
    );

    // Referrers: distribution 2.8 has no API, so the sha256-<hex> tag index is kept.
    c.put_blob(
        &repo,
        &EMPTY_JSON_DIGEST.parse().unwrap(),
        2,
        &mut &b"{}"[..],
    )
    .unwrap();
    let statement = b"{\"_type\":\"https://in-toto.io/Statement/v1\"}".to_vec();
    c.put_blob(
        &repo,
        &Sha256Digest::of(&statement),
        statement.len() as u64,
        &mut &statement[..],
    )
    .unwrap();
    let referrer = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"{IN_TOTO}","config":{{"mediaType":"{OCI_EMPTY}","digest":"{EMPTY_JSON_DIGEST}","size":2}},"layers":[{{"mediaType":"{IN_TOTO}","digest":"{}","size":{}}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{digest}","size":{}}}}}"#,
        Sha256Digest::of(&statement),
        statement.len(),
        img.manifest.len()
    );
    let referrer_digest = Sha256Digest::of(referrer.as_bytes());
    c.put_manifest(
        &repo,
        &referrer_digest.to_string(),
        OCI_MANIFEST,
        referrer.as_bytes(),
    )
    .unwrap();
    let desc = DescriptorBuilder::default()
        .media_type(MediaType::ImageManifest)
        .digest(
            referrer_digest
                .to_string()
                .parse::<oci_spec::image::Digest>()
                .unwrap(),
        )
        .size(referrer.len() as u64)
        .artifact_type(MediaType::Other(IN_TOTO.into()))
        .build()
        .unwrap();
    assert!(c.referrers(&repo, &digest).unwrap().is_empty());
    let first = c.add_fallback_referrer(&repo, &digest, &desc).unwrap();
    assert_eq!(
        c.add_fallback_referrer(&repo, &digest, &desc).unwrap(),
        first,
        "adding twice changes nothing"
    );
    let listed = c.referrers(&repo, &digest).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].digest().to_string(), referrer_digest.to_string());
    assert_eq!(
        c.resolve_tag(&repo, &referrers_tag(&digest)).unwrap(),
        first
    );
}

#[test]
fn real_registry_blob_altered_in_its_storage_is_refused_on_pull() {
    let reg = LocalRegistry::start(&[]);
    let c = client(AuthFiles::none(), 16 << 20);
    let repo = repo_of(&reg, "kiln/tampered");
    let img = image(7);
    push_image(&c, &repo, &img, "v1");
    let layer = Sha256Digest::of(&img.blobs[1]);
    let path = reg.blob_path(&layer.hex());
    let mut data = fs_err::read(&path).unwrap();
    assert_eq!(
        data,
        img.blobs[1],
        "the registry stores blobs at {}",
        path.display()
    );
    data[1234] ^= 0xff;
    fs_err::write(&path, &data).unwrap();

    let store = tempfile::tempdir().unwrap();
    let mut tmp = tempfile::NamedTempFile::new_in(store.path()).unwrap();
    let err = c
        .get_blob(&repo, &layer, Some(50_000), tmp.as_file_mut())
        .unwrap_err();
    drop(tmp);
    assert!(
        matches!(err, RegistryError::DigestMismatch { expected, .. } if expected == layer),
        "{err}"
    );
    assert!(err.to_string().contains(&layer.to_string()), "{err}");
    assert_eq!(
        fs_err::read_dir(store.path()).unwrap().count(),
        0,
        "nothing stored"
    );
    // The untouched blobs still pull.
    let config = Sha256Digest::of(&img.blobs[0]);
    c.get_blob(&repo, &config, None, &mut Vec::new()).unwrap();
}

fn auth_file(dir: &Path, host: &str, user: &str, pass: &str) -> AuthFiles {
    let path = dir.join("auth.json");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    let mut f = fs_err::File::create(&path).unwrap();
    write!(f, r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#).unwrap();
    AuthFiles(vec![path])
}

#[test]
fn real_registry_with_htpasswd_needs_the_auth_file() {
    let reg = LocalRegistry::start(&[("kiln", "s3cret")]);
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_of(&reg, "kiln/private");
    let img = image(3);

    let authed = client(auth_file(dir.path(), &reg.host, "kiln", "s3cret"), 64 << 10);
    let digest = push_image(&authed, &repo, &img, "v1");
    let m = authed
        .get_manifest(&repo, &digest.to_string(), ALL_MANIFEST_TYPES)
        .unwrap();
    assert_eq!(m.bytes, img.manifest);
    let mut sink = Vec::new();
    authed
        .get_blob(
            &repo,
            &Sha256Digest::of(&img.blobs[2]),
            Some(300_000),
            &mut sink,
        )
        .unwrap();
    assert_eq!(sink, img.blobs[2]);

    let anonymous = client(AuthFiles(vec![dir.path().join("missing.json")]), 64 << 10);
    let err = anonymous
        .get_manifest(&repo, "v1", ALL_MANIFEST_TYPES)
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{text}");
    assert!(
        text.contains(&format!("no credentials for {}", reg.host)) && text.contains("missing.json"),
        "{text}"
    );

    let other = tempfile::tempdir().unwrap();
    let wrong = client(
        auth_file(other.path(), &reg.host, "kiln", "wrong"),
        64 << 10,
    );
    let err = wrong
        .put_blob(&repo, &Sha256Digest::of(b"x"), 1, &mut &b"x"[..])
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("refused the credentials of user `kiln`"),
        "{err}"
    );
}
