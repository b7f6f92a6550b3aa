//! kiln's signature images through a real registry and skopeo.
//!
//! A real registry (Debian's `docker-registry`) runs on a free loopback port. The test image
//! and kiln's `.sig` image are pushed with `skopeo copy --preserve-digests` from OCI layouts;
//! kiln's verifier then reads them back over the registry API, a second signature is appended
//! to what the registry holds. containers/image's own `sigstoreSigned` policy check is not
//! exercised: Debian's skopeo and podman are built with sigstore verification patched out
//! ("Debian-local change: sigstore disabled"), so no verifier here could run it; the
//! signatures' bytes are checked by kiln and by the Python verifiers (tests/verifiers).
//! Needs `docker-registry` and `skopeo`: without them the test fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::attest::cosign::{
    append_to_signature_image, attachment_tag, build_signature_image, AttachmentKind, Blob,
    Descriptor, NewLayer, SignatureImage, SignatureManifest,
};
use crate::attest::verify::{verify_signatures, IdentityPolicy};
use crate::attest::{keys, signature_layer};
use crate::digest::Sha256Digest;
use crate::media::{OCI_CONFIG, OCI_LAYER_TAR, OCI_MANIFEST};
use crate::testing::registry::LocalRegistry;

/// The path of `name`; its absence fails the test (scripts/setup.sh installs it).
fn tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!("containers/image interop test needs `{name}` on PATH: run scripts/setup.sh")
        })
}

/// Writes an OCI layout at `dir` holding one manifest tagged `tag`.
fn write_layout(dir: &Path, tag: &str, manifest: &Blob, blobs: &[&Blob]) {
    let blob_dir = dir.join("blobs/sha256");
    fs_err::create_dir_all(&blob_dir).unwrap();
    for blob in blobs.iter().copied().chain([manifest]) {
        fs_err::write(blob_dir.join(blob.digest.hex()), &blob.bytes).unwrap();
    }
    fs_err::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": manifest.digest,
            "size": manifest.bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    fs_err::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// A one-layer image (an empty tar) as (manifest, [config, layer]).
fn test_image() -> (Blob, Vec<Blob>) {
    let layer = Blob::new(vec![0u8; 1024]);
    let config = Blob::new(
        serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
        }))
        .unwrap(),
    );
    let manifest = Blob::new(
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.bytes.len()},
            "layers": [{"mediaType": OCI_LAYER_TAR, "digest": layer.digest, "size": layer.bytes.len()}],
        }))
        .unwrap(),
    );
    (manifest, vec![config, layer])
}

struct Skopeo {
    binary: PathBuf,
    dir: PathBuf,
    host: String,
}

impl Skopeo {
    /// `skopeo copy` from `src` to `dst` under `policy`; Ok(()) or Err(stderr).
    fn copy(
        &self,
        policy: &serde_json::Value,
        extra: &[&str],
        src: &str,
        dst: &str,
    ) -> Result<(), String> {
        let policy_path = self.dir.join("policy.json");
        fs_err::write(&policy_path, serde_json::to_vec(policy).unwrap()).unwrap();
        let output = Command::new(&self.binary)
            .arg("--registries.d")
            .arg(self.dir.join("registries.d"))
            .arg("--policy")
            .arg(&policy_path)
            .args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
            .args(extra)
            .args([src, dst])
            .output()
            .unwrap();
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    fn push_layout(&self, layout: &Path, tag: &str, dest_tag: &str) {
        let accept = json!({"default": [{"type": "insecureAcceptAnything"}]});
        self.copy(
            &accept,
            &["--preserve-digests"],
            &format!("oci:{}:{tag}", layout.display()),
            &format!("docker://{}/app:{dest_tag}", self.host),
        )
        .unwrap_or_else(|e| panic!("failed to push {tag}: {e}"));
    }

    /// Pulls `app@digest` under a policy requiring a sigstore signature by `key_path`.
    fn push_signatures(
        &self,
        subject: &Sha256Digest,
        layers: Vec<NewLayer>,
        name: &str,
    ) -> SignatureImage {
        let image = build_signature_image(layers);
        let layout = self.dir.join(name);
        let blobs: Vec<&Blob> = [&image.config]
            .into_iter()
            .chain(&image.new_layers)
            .collect();
        write_layout(&layout, "sig", &image.manifest, &blobs);
        self.push_layout(
            &layout,
            "sig",
            &attachment_tag(subject, AttachmentKind::Signature),
        );
        image
    }
}

/// GETs `path` under the registry's `/v2/app/` with OCI manifest accept headers.
fn registry_get(host: &str, path: &str) -> Vec<u8> {
    let response = ureq::get(&format!("http://{host}/v2/app/{path}"))
        .header("Accept", OCI_MANIFEST)
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut response.into_body().into_reader(), &mut body).unwrap();
    body
}

/// The `.sig` image of `subject` as a verifier reads it from the registry.
fn fetch_signatures(host: &str, subject: &Sha256Digest) -> (Vec<u8>, Vec<(Descriptor, Vec<u8>)>) {
    let tag = attachment_tag(subject, AttachmentKind::Signature);
    let manifest = registry_get(host, &format!("manifests/{tag}"));
    let layers = SignatureManifest::parse(&manifest)
        .unwrap()
        .layers
        .into_iter()
        .map(|d| {
            let blob = registry_get(host, &format!("blobs/{}", d.digest));
            (d, blob)
        })
        .collect();
    (manifest, layers)
}

#[test]
fn kiln_signature_images_survive_a_registry_and_skopeo() {
    let skopeo_bin = tool("skopeo");
    let registry = LocalRegistry::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    fs_err::create_dir_all(dir.path().join("registries.d")).unwrap();
    fs_err::write(
        dir.path().join("registries.d/kiln-test.yaml"),
        format!(
            "docker:\n  {}:\n    use-sigstore-attachments: true\n",
            registry.host
        ),
    )
    .unwrap();
    let skopeo = Skopeo {
        binary: skopeo_bin,
        dir: dir.path().to_path_buf(),
        host: registry.host.clone(),
    };

    let (manifest, blobs) = test_image();
    let layout = dir.path().join("image");
    write_layout(&layout, "v1", &manifest, &blobs.iter().collect::<Vec<_>>());
    skopeo.push_layout(&layout, "v1", "v1");
    let digest = manifest.digest;
    let reference = format!("{}/app:v1", registry.host);

    let key = keys::generate();
    let key_path = dir.path().join("kiln.pub");
    fs_err::write(&key_path, keys::write_public_pem(key.verifying_key())).unwrap();

    // Pushed through skopeo, the `.sig` image keeps its exact bytes and verifies from the
    // registry.
    let first = signature_layer(&key, &reference, &digest);
    let pushed = skopeo.push_signatures(&digest, vec![first], "sig-1");
    let (fetched, layers) = fetch_signatures(&registry.host, &digest);
    assert_eq!(fetched, pushed.manifest.bytes);
    let report = verify_signatures(
        &layers,
        key.verifying_key(),
        &digest,
        &IdentityPolicy::Exact(reference.clone()),
    );
    assert!(report.verified, "{report:?}");

    // A second signer appends to what the registry holds; both keys then verify.
    let second_key = keys::generate();
    let appended = append_to_signature_image(
        &fetched,
        vec![signature_layer(&second_key, &reference, &digest)],
    )
    .unwrap();
    let layout = dir.path().join("sig-2");
    let mut blobs: Vec<&Blob> = vec![&appended.config];
    blobs.extend(&appended.new_layers);
    let old_blobs: Vec<Blob> = layers.iter().map(|(_, b)| Blob::new(b.clone())).collect();
    blobs.extend(&old_blobs);
    write_layout(&layout, "sig", &appended.manifest, &blobs);
    skopeo.push_layout(
        &layout,
        "sig",
        &attachment_tag(&digest, AttachmentKind::Signature),
    );
    let (_, layers) = fetch_signatures(&registry.host, &digest);
    assert_eq!(layers.len(), 2);
    for k in [&key, &second_key] {
        assert!(
            verify_signatures(&layers, k.verifying_key(), &digest, &IdentityPolicy::Any).verified
        );
    }
}
