use super::*;

const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn digest() -> Sha256Digest {
    format!("sha256:{HEX}").parse().unwrap()
}

/// (input, canonical form): every valid reference prints back as its canonical form, and the
/// canonical form parses to the same reference.
#[test]
fn valid_references_and_their_canonical_form() {
    let d = format!("@sha256:{HEX}");
    let same = |s: &str| (s.to_string(), s.to_string());
    let cases: Vec<(String, String)> = vec![
        same("oci:out/hello"),
        same("oci:out/hello:v1"),
        same(&format!("oci:/a/b:v1{d}")),
        same(&format!("oci:./x{d}")),
        same("oci:./a:b/c"),
        same(&format!("oci:/var/lib/images/debian:12{d}")),
        same("oci-archive:img.tar"),
        same(&format!("oci-archive:base.tar:t{d}")),
        same("docker-archive:img.tar"),
        same("docker-archive:/tmp/base.tar"),
        same(&format!("docker://127.0.0.1:5000/lib/busybox{d}")),
        same("docker://127.0.0.1:5000/a/b/c:v1.2"),
        same("docker://localhost/x:v1.2"),
        same("docker://localhost:80/a/b/c:latest"),
        same(&format!("docker://reg.example/lib/debian:12{d}")),
        same("docker://[::1]:5000/a__b/c-d.e"),
        same("docker://[::1]/a"),
        same("docker://reg.example/a---b/c_d"),
        same("docker://Reg.Example/a"),
        same("docker://docker.io/library/debian:bookworm"),
        same(&format!("docker://reg.example/a:{}", "t".repeat(128))),
        same("docker://reg.example/a:_x"),
        // skopeo's normalisation: docker.io, and library/ for a one-component path there.
        (
            "docker://debian".into(),
            "docker://docker.io/library/debian".into(),
        ),
        (
            format!("docker://debian:12{d}"),
            format!("docker://docker.io/library/debian:12{d}"),
        ),
        (
            "docker://debian/slim".into(),
            "docker://docker.io/debian/slim".into(),
        ),
        (
            "docker://docker.io/debian".into(),
            "docker://docker.io/library/debian".into(),
        ),
        (
            "docker://index.docker.io/debian".into(),
            "docker://docker.io/library/debian".into(),
        ),
        // `localhost:5000` with no `/` is a repository with a tag, as in distribution.
        (
            "docker://localhost:5000".into(),
            "docker://docker.io/library/localhost:5000".into(),
        ),
    ];
    for (input, canonical) in cases {
        let parsed: ImageRef = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(parsed.to_string(), canonical, "{input}");
        assert_eq!(
            canonical.parse::<ImageRef>().unwrap(),
            parsed,
            "{canonical}"
        );
        let json = serde_json::to_string(&parsed).unwrap();
        assert_eq!(serde_json::from_str::<ImageRef>(&json).unwrap(), parsed);
    }
}

#[test]
fn parts_of_references() {
    let d = digest();
    let oci: ImageRef = format!("oci:/a/b:v1@{d}").parse().unwrap();
    assert_eq!(
        oci,
        ImageRef::Oci {
            path: "/a/b".into(),
            tag: Some("v1".into()),
            digest: Some(d),
        }
    );
    assert_eq!(oci.transport(), "oci");
    assert!(oci.registry().is_none());

    // (input, registry, api host, repository, tag, pinned)
    let table = [
        (
            "docker://127.0.0.1:5000/kiln/base",
            "127.0.0.1:5000",
            "127.0.0.1:5000",
            "kiln/base",
            None,
            false,
        ),
        (
            &*format!("docker://reg.example/lib/debian:12@{d}"),
            "reg.example",
            "reg.example",
            "lib/debian",
            Some("12"),
            true,
        ),
        (
            "docker://debian:bookworm",
            "docker.io",
            "registry-1.docker.io",
            "library/debian",
            Some("bookworm"),
            false,
        ),
    ];
    for (input, registry, api_host, repo, tag, pinned) in table {
        let parsed: ImageRef = input.parse().unwrap();
        assert_eq!(parsed.is_pinned(), pinned, "{input}");
        let r = parsed.registry().unwrap();
        assert_eq!(r.repository().registry(), registry, "{input}");
        assert_eq!(r.repository().api_host(), api_host, "{input}");
        assert_eq!(r.repository().name(), repo, "{input}");
        assert_eq!(r.tag(), tag, "{input}");
        assert_eq!(&input.parse::<Reference>().unwrap(), r, "{input}");
    }
}

/// (input, the problem named): each refusal names the part that is wrong.
#[test]
fn invalid_references_name_the_offending_part() {
    let long_name = format!("docker://reg.example/{}", "a".repeat(250));
    let long_tag = format!("docker://reg.example/a:{}", "t".repeat(129));
    let image_id = format!("docker://{HEX}");
    let cases: Vec<(&str, Problem)> = vec![
        ("", Problem::UnknownTransport),
        ("out/hello", Problem::UnknownTransport),
        ("debian:12", Problem::UnknownTransport),
        ("docker:reg.example/debian", Problem::UnknownTransport),
        ("containers-storage:x", Problem::UnknownTransport),
        ("oci:", Problem::Empty("oci:")),
        ("oci-archive:", Problem::Empty("oci-archive:")),
        ("docker-archive:", Problem::Empty("docker-archive:")),
        ("docker://", Problem::Empty("docker://")),
        ("oci:x@sha256:12", Problem::Digest("sha256:12".into())),
        // Written into the layout as `org.opencontainers.image.ref.name`, which skopeo and
        // umoci would then refuse to read.
        ("oci:out:Bad Tag", Problem::LayoutTag("Bad Tag".into())),
        ("oci:out:.x", Problem::LayoutTag(".x".into())),
        ("oci-archive:a.tar:x-", Problem::LayoutTag("x-".into())),
        ("oci:out:x y@sha256:12", Problem::Digest("sha256:12".into())),
        (
            "docker://reg/debian@sha512:abcd",
            Problem::Digest("sha512:abcd".into()),
        ),
        (
            "docker://reg.example/a@sha256:ABC",
            Problem::Digest("sha256:ABC".into()),
        ),
        (
            "docker-archive:/tmp/base.tar@sha256:00",
            Problem::DigestNotAllowed,
        ),
        (
            "docker://reg.example/a..b",
            Problem::PathComponent("a..b".into()),
        ),
        (
            "docker://reg.example/a_-b",
            Problem::PathComponent("a_-b".into()),
        ),
        (
            "docker://reg.example/a___b",
            Problem::PathComponent("a___b".into()),
        ),
        (
            "docker://reg.example/-a",
            Problem::PathComponent("-a".into()),
        ),
        (
            "docker://reg.example/a.",
            Problem::PathComponent("a.".into()),
        ),
        (
            "docker://reg.example/UPPER",
            Problem::PathComponent("UPPER".into()),
        ),
        (
            "docker://reg/Debian",
            Problem::PathComponent("Debian".into()),
        ),
        (
            "docker://reg.example/a//b",
            Problem::PathComponent("".into()),
        ),
        ("docker://reg.example/", Problem::PathComponent("".into())),
        (
            "docker://reg.example:99999/a",
            Problem::Registry("reg.example:99999".into()),
        ),
        (
            "docker://reg.example:/a",
            Problem::Registry("reg.example:".into()),
        ),
        (
            "docker://-bad.example/a",
            Problem::Registry("-bad.example".into()),
        ),
        (
            "docker://a..b.example/a",
            Problem::Registry("a..b.example".into()),
        ),
        (
            "docker://[zz]:5000/a",
            Problem::Registry("[zz]:5000".into()),
        ),
        ("docker://reg.example/a:", Problem::Tag("".into())),
        ("docker://reg/debian:", Problem::Tag("".into())),
        ("docker://reg.example/a:.x", Problem::Tag(".x".into())),
        ("docker://reg.example/a:-x", Problem::Tag("-x".into())),
        ("docker://reg.example/a:x+y", Problem::Tag("x+y".into())),
        (&long_tag, Problem::Tag("t".repeat(129))),
        (&long_name, Problem::NameTooLong(262)),
        (&image_id, Problem::ImageId(HEX.to_string())),
    ];
    for (input, problem) in cases {
        let err = input.parse::<ImageRef>().unwrap_err();
        assert_eq!(err.problem, problem, "{input}");
        assert_eq!(err.input, input);
    }
    let err = "oci:x".parse::<Reference>().unwrap_err();
    assert_eq!(err.problem, Problem::NotDocker);
}

#[test]
fn messages_quote_the_reference_and_the_part() {
    let err = "docker://reg.example/a..b".parse::<ImageRef>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid image reference `docker://reg.example/a..b`: the path component `a..b` is not \
         lowercase [a-z0-9] runs joined by `.`, `_`, `__` or `-`"
    );
}

#[test]
fn manifest_ref_prefers_digest_and_defaults_to_latest() {
    let r: Reference = "docker://localhost:5000/a".parse().unwrap();
    assert_eq!(r.tag_or_latest(), "latest");
    assert_eq!(r.manifest_ref(), "latest");
    let pinned = r.with_digest(digest());
    assert_eq!(pinned.manifest_ref(), format!("sha256:{HEX}"));
    assert_eq!(
        pinned.to_string(),
        format!("docker://localhost:5000/a@sha256:{HEX}")
    );
    assert!(valid_manifest_ref("v1.2"));
    assert!(valid_manifest_ref(&format!("sha256:{HEX}")));
    assert!(!valid_manifest_ref("sha256:12"));
    assert!(!valid_manifest_ref("../x"));
}

#[test]
fn repositories_and_tags_built_from_parts_are_checked() {
    assert!(Repository::new("reg.example", "a/b").is_ok());
    assert_eq!(
        Repository::new("reg.example", "a..b").unwrap_err().problem,
        Problem::PathComponent("a..b".into())
    );
    let repo = Repository::new("reg.example", "a").unwrap();
    assert_eq!(
        Reference::new(repo, Some(".x"), None).unwrap_err().problem,
        Problem::Tag(".x".into())
    );
}

/// Pinning keeps the transport, path and tag as written and only sets the digest; unpinning
/// drops it; a docker-archive has nothing to pin.
#[test]
fn pinned_and_unpinned_keep_everything_but_the_digest() {
    let d = digest();
    for (text, pinned) in [
        ("oci:./base:1", format!("oci:./base:1@{d}")),
        ("oci-archive:b.tar", format!("oci-archive:b.tar@{d}")),
        (
            "docker://debian:12",
            format!("docker://docker.io/library/debian:12@{d}"),
        ),
    ] {
        let r: ImageRef = text.parse().unwrap();
        let p = r.pinned(d).unwrap();
        assert_eq!(p.to_string(), pinned);
        assert_eq!(p.digest(), Some(&d));
        assert_eq!(p.unpinned(), r, "{text}");
        assert_eq!(pinned.parse::<ImageRef>().unwrap(), p);
    }
    let archive: ImageRef = "docker-archive:b.tar".parse().unwrap();
    assert_eq!(archive.pinned(d), None);
    assert_eq!(archive.unpinned(), archive);
}
