//! The remote cache against a real distribution registry: a record written is found, its
//! layer pulled verified; writing twice writes the same bytes; and the registry refuses a
//! record whose blob is missing, so an interrupted writer can only leave blobs behind.

use std::io::Write as _;
use std::sync::Arc;

use super::*;
use crate::attest::keys;
use crate::digest::Sha256Digest;
use crate::media;
use crate::registry::{AuthFiles, Client, ClientOptions, Repository};
use crate::store::Store;
use crate::testing::registry::LocalRegistry;

fn client() -> Arc<Client> {
    Arc::new(
        Client::new(ClientOptions {
            auth_files: AuthFiles::none(),
            ..ClientOptions::default()
        })
        .unwrap(),
    )
}

/// A gzip layer of some bytes, written to `dir/layer`, and its record under `key`.
fn layer(dir: &std::path::Path, key: &[u8]) -> (CacheRecord, std::path::PathBuf) {
    let tar: Vec<u8> = (0..5000u32).flat_map(|i| i.to_le_bytes()).collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let path = dir.join("layer");
    fs_err::write(&path, &gz).unwrap();
    let record = CacheRecord {
        key: Sha256Digest::of(key),
        media_type: media::OCI_LAYER_GZIP.into(),
        digest: Sha256Digest::of(&gz),
        size: gz.len() as u64,
        diff_id: Sha256Digest::of(&tar),
        encoder: "enc".into(),
        kiln: "test".into(),
    };
    (record, path)
}

fn put_blobs(client: &Client, repo: &Repository, blobs: &[&[u8]]) {
    for bytes in blobs {
        let digest = Sha256Digest::of(bytes);
        client
            .put_blob(repo, &digest, bytes.len() as u64, &mut &bytes[..])
            .unwrap();
    }
}

fn want(record: &CacheRecord) -> Expected<'_> {
    Expected {
        key: &record.key,
        encoder: &record.encoder,
        media_type: &record.media_type,
        max_size: crate::fetch::DEFAULT_MAX_DOWNLOAD_SIZE,
    }
}

#[test]
fn a_pushed_record_is_found_and_its_layer_pulled_verified() {
    let reg = LocalRegistry::start(&[]);
    let client = client();
    let repo = Repository::new(&reg.host, "ci/cache").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (record, path) = layer(tmp.path(), b"key");
    let signer = keys::generate();
    let to_push = [LayerToPush {
        record: record.clone(),
        path: &path,
    }];
    let first = push(&client, &repo, &to_push, Some(&signer), 2).unwrap();
    assert_eq!((first.uploaded, first.existed, first.records), (1, 0, 1));
    let tag = record::tag(&record.key);
    let manifest = client.resolve_tag(&repo, &tag).unwrap();
    // A second writer of the same layer: nothing uploaded, the record byte for byte the same.
    let second = push(&client, &repo, &to_push, Some(&signer), 2).unwrap();
    assert_eq!((second.uploaded, second.existed, second.records), (0, 1, 1));
    assert_eq!(client.resolve_tag(&repo, &tag).unwrap(), manifest);

    let store = Store::open(&tmp.path().join("store")).unwrap();
    let source = CacheSource::new(repo.clone(), vec![*signer.verifying_key()]);
    let hit = lookup(&client, &store, &source, want(&record))
        .unwrap()
        .expect("a hit");
    assert_eq!(hit.record, record);
    assert_eq!(hit.cache, format!("{}/ci/cache", reg.host));
    assert_eq!(hit.signed_by, Some(keys::key_id(signer.verifying_key())));
    assert_eq!(
        fs_err::read(&hit.path).unwrap(),
        fs_err::read(&path).unwrap()
    );
    assert_eq!(store.diff_id_record(&record.digest), Some(record.diff_id));

    // Another key has no record: a miss, not an error.
    let (other, _) = layer(tmp.path(), b"other key");
    assert_eq!(
        lookup(&client, &store, &source, want(&other)).unwrap(),
        None
    );
    // A registry that is not there: the cache is unreachable, not a miss.
    let gone = CacheSource::new(Repository::new("127.0.0.1:9", "cache").unwrap(), Vec::new());
    let err = lookup(&client, &store, &gone, want(&record)).unwrap_err();
    assert!(err.is_unreachable(), "{err}");
}

#[test]
fn a_record_is_refused_until_its_blob_is_there() {
    let reg = LocalRegistry::start(&[]);
    let client = client();
    let repo = Repository::new(&reg.host, "cache").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (record, _) = layer(tmp.path(), b"key");
    // Everything but the layer blob, as a writer that skipped it would push.
    let envelope = record.envelope(None);
    put_blobs(&client, &repo, &[media::EMPTY_JSON, &envelope]);
    let manifest = record.manifest(&Sha256Digest::of(&envelope), envelope.len() as u64);
    let tag = record::tag(&record.key);
    let refused = client.put_manifest(&repo, &tag, media::OCI_MANIFEST, &manifest);
    assert!(
        refused.is_err(),
        "the registry took a record without its blob"
    );
    // A reader then misses and builds.
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let source = CacheSource::new(repo, Vec::new());
    assert_eq!(
        lookup(&client, &store, &source, want(&record)).unwrap(),
        None
    );
}

/// A tag that holds an ordinary Docker image (schema 2) rather than a record: asked for OCI
/// manifests only, distribution converted it to schema 1, and the reader reported a digest
/// mismatch instead of saying what the tag holds.
#[test]
fn a_docker_image_under_a_record_tag_is_not_a_record() {
    let reg = LocalRegistry::start(&[]);
    let client = client();
    let repo = Repository::new(&reg.host, "cache").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (record, path) = layer(tmp.path(), b"key");
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [record.diff_id.to_string()]},
    }))
    .unwrap();
    let gz = fs_err::read(&path).unwrap();
    put_blobs(&client, &repo, &[&config, &gz]);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::DOCKER_MANIFEST,
        "config": {"mediaType": media::DOCKER_CONFIG, "digest": Sha256Digest::of(&config).to_string(), "size": config.len()},
        "layers": [{"mediaType": media::DOCKER_LAYER_GZIP, "digest": record.digest.to_string(), "size": record.size}],
    }))
    .unwrap();
    let tag = record::tag(&record.key);
    client
        .put_manifest(&repo, &tag, media::DOCKER_MANIFEST, &manifest)
        .unwrap();
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let source = CacheSource::new(repo, Vec::new());
    let err = lookup(&client, &store, &source, want(&record)).unwrap_err();
    assert!(
        matches!(err, CacheError::NotARecord { .. }),
        "{err}: {:?}",
        std::error::Error::source(&err).map(ToString::to_string)
    );
}
