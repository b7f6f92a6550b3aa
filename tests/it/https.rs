//! One HTTP stack (issue 17): url inputs and registries trust the same roots and follow the
//! same redirect and credential policy. A private CA made by the test signs loopback https
//! servers; given in `SSL_CERT_FILE`, both a url input and a registry push, pull and base work;
//! without it both fail saying the certificate is not trusted and how to add a CA.

use std::path::Path;
use std::process::Command;

use crate::http_server::{Reply, Req, Server};
use crate::registry::{build_a, json, recipe_b};
use crate::registry_support::LocalRegistry;
use crate::support::*;
use crate::tls_support::TestCa;

const CONTENT: &[u8] = b"an input behind a private CA\n";

fn without_ca(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR")
}

fn with_ca<'a>(cmd: &'a mut Command, ca: &Path) -> &'a mut Command {
    cmd.env("SSL_CERT_FILE", ca).env_remove("SSL_CERT_DIR")
}

fn assert_untrusted(err: &str, host: &str) {
    assert!(
        err.contains(&format!("the TLS certificate of {host} is not trusted"))
            && err.contains("hint:")
            && err.contains("SSL_CERT_FILE"),
        "{err}"
    );
}

/// `input/recipe.toml`, with one url input: `CONTENT` at `/blob` of `server`. Its digest (hex).
fn write_input_recipe(ctx: &TestContext, server: &Server) -> String {
    let digest = kiln::Sha256Digest::of(CONTENT).hex();
    ctx.write(
        "input/recipe.toml",
        format!(
            "[image]\nname = \"i\"\n[inputs.blob]\nurl = \"{}\"\nsha256 = \"{digest}\"\n\
             [[layer]]\n[[layer.step]]\nwrite = \"/hello\"\ncontent = \"hi\\n\"\n",
            server.url("/blob")
        ),
    );
    digest
}

#[test]
fn a_private_ca_in_ssl_cert_file_is_trusted_by_url_inputs_and_registries_alike() {
    let ctx = TestContext::new();
    std::fs::create_dir(ctx.join("ca")).unwrap();
    let ca = TestCa::new(&ctx.join("ca"));

    // A url input on an https server the CA signed.
    let server = Server::tls_with(&ca.server_cert, &ca.server_key, |_| Reply::ok(CONTENT, &[]));
    let digest = write_input_recipe(&ctx, &server);
    let fetch = |ctx: &TestContext| {
        let mut cmd = ctx.kiln();
        cmd.args(["fetch", "input/recipe.toml"]);
        cmd
    };
    let err = stderr(&run_err(without_ca(&mut fetch(&ctx))));
    assert_untrusted(&err, &server.host());
    run_ok(with_ca(&mut fetch(&ctx), &ca.ca_pem));
    assert_eq!(
        std::fs::read(ctx.join(format!("xdg-cache/kiln/blobs/sha256/{digest}"))).unwrap(),
        CONTENT
    );

    // A registry speaking https only, with a certificate the same CA signed.
    let reg = LocalRegistry::start_tls(&[], &ca.server_cert, &ca.server_key);
    let a = build_a(&ctx, &[]);
    let a_ref = reg.reference("kiln/a:v1");
    let err = stderr(&run_err(without_ca(ctx.kiln().args([
        "copy",
        "oci:a-oci:a",
        &a_ref,
    ]))));
    assert_untrusted(&err, &reg.host);
    let pushed = last_line(&run_ok(with_ca(
        ctx.kiln().args(["copy", "oci:a-oci:a", &a_ref]),
        &ca.ca_pem,
    )));
    assert_eq!(pushed, a);
    // Pulled back, and used as a base: the same digest, read over the same trust.
    let fresh = TestContext::new();
    let err = stderr(&run_err(without_ca(fresh.kiln().args([
        "copy",
        &a_ref,
        "oci:pulled:a",
    ]))));
    assert_untrusted(&err, &reg.host);
    let pulled = last_line(&run_ok(with_ca(
        fresh.kiln().args(["copy", &a_ref, "oci:pulled:a"]),
        &ca.ca_pem,
    )));
    assert_eq!(pulled, a);
    let builder = TestContext::new();
    builder.write("b/recipe.toml", recipe_b(&format!("{a_ref}@{a}")));
    let err = stderr(&run_err(without_ca(builder.kiln().args([
        "build",
        "b/recipe.toml",
        "-o",
        "b-oci",
    ]))));
    assert_untrusted(&err, &reg.host);
    run_ok(with_ca(
        builder
            .kiln()
            .args(["build", "b/recipe.toml", "-o", "b-oci"]),
        &ca.ca_pem,
    ));
    assert!(builder.join("b-oci/index.json").is_file());

    // The CA in a directory of `SSL_CERT_DIR` is trusted the same way.
    std::fs::create_dir(ctx.join("certs")).unwrap();
    std::fs::copy(&ca.ca_pem, ctx.join("certs/private-ca.pem")).unwrap();
    let other = TestContext::new();
    let pulled = last_line(&run_ok(
        other
            .kiln()
            .env_remove("SSL_CERT_FILE")
            .env("SSL_CERT_DIR", ctx.join("certs"))
            .args(["copy", &a_ref, "oci:pulled:a"]),
    ));
    assert_eq!(pulled, a);
}

#[test]
fn proxy_variables_are_not_used() {
    // kiln connects directly (as it always did); a proxy named in the environment would also
    // see every request, registry credentials included.
    let server = Server::start(|_| Reply::ok(CONTENT, &[]));
    let proxy = Server::start(|_| Reply::status(502, b"", &[]));
    let ctx = TestContext::new();
    let digest = write_input_recipe(&ctx, &server);
    let mut fetch = ctx.kiln();
    for name in ["ALL_PROXY", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY"] {
        fetch.env(name, proxy.url(""));
    }
    run_ok(
        fetch
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .args(["fetch", "input/recipe.toml"]),
    );
    assert_eq!(server.requests().len(), 1);
    assert!(proxy.requests().is_empty(), "a request went to the proxy");
    assert!(ctx
        .join(format!("xdg-cache/kiln/blobs/sha256/{digest}"))
        .is_file());
}

/// The first image of the OCI layout `layout`: its manifest digest and bytes, and every blob
/// it names (`sha256:…`, bytes).
struct LayoutImage {
    digest: String,
    manifest: Vec<u8>,
    blobs: Vec<(String, Vec<u8>)>,
}

fn layout_image(layout: &Path) -> LayoutImage {
    let index = json(&std::fs::read_to_string(layout.join("index.json")).unwrap());
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let read = |d: &str| std::fs::read(layout.join("blobs/sha256").join(&d[7..])).unwrap();
    let manifest = read(&digest);
    let parsed = json(std::str::from_utf8(&manifest).unwrap());
    let mut blobs = vec![parsed["config"]["digest"].as_str().unwrap().to_string()];
    for layer in parsed["layers"].as_array().unwrap() {
        blobs.push(layer["digest"].as_str().unwrap().to_string());
    }
    let blobs = blobs.into_iter().map(|d| (d.clone(), read(&d))).collect();
    LayoutImage {
        digest,
        manifest,
        blobs,
    }
}

#[test]
fn a_registry_redirect_to_another_host_carries_no_authorization() {
    // SECURITY.md 20 through the CLI: a registry that wants Basic credentials redirects every
    // blob to another host (a CDN); the blobs arrive, the credentials do not follow them.
    let ctx = TestContext::new();
    let a = build_a(&ctx, &[]);
    let LayoutImage {
        digest: manifest_digest,
        manifest,
        blobs,
    } = layout_image(&ctx.join("a-oci"));
    assert_eq!(manifest_digest, a);
    let cdn_blobs = blobs.clone();
    let cdn = Server::start(move |r: &Req| {
        let asked = r.path().trim_start_matches("/blobs/");
        match cdn_blobs.iter().find(|(d, _)| d == asked) {
            Some((_, bytes)) => Reply::ok(bytes, &[]),
            None => Reply::not_found(),
        }
    });
    let cdn_host = cdn.host();
    let credentials = "Basic dXNlcjpzZWNyZXQ="; // user:secret
    let registry = Server::start(move |r: &Req| {
        if r.header("authorization") != Some(credentials) {
            return Reply::status(
                401,
                b"",
                &[("WWW-Authenticate", r#"Basic realm="kiln-test""#)],
            );
        }
        let path = r.path();
        if path == "/v2/" {
            Reply::ok(b"", &[])
        } else if path.ends_with("/manifests/v1")
            || path.ends_with(&format!("/manifests/{manifest_digest}"))
        {
            Reply::ok(
                &manifest,
                &[
                    ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                    ("Docker-Content-Digest", &manifest_digest),
                ],
            )
        } else if let Some((_, digest)) = path.split_once("/blobs/") {
            Reply::redirect(&format!("http://{cdn_host}/blobs/{digest}"))
        } else {
            Reply::not_found()
        }
    });
    // A fresh cache: the build above cached the blobs.
    let ctx = TestContext::new();
    let auth = ctx.write(
        "auth.json",
        format!(
            r#"{{"auths":{{"{}":{{"auth":"dXNlcjpzZWNyZXQ="}}}}}}"#,
            registry.host()
        ),
    );
    let source = format!("docker://{}/app:v1", registry.host());
    let pulled = last_line(&run_ok(ctx.kiln().env("REGISTRY_AUTH_FILE", &auth).args([
        "copy",
        &source,
        "oci:pulled:a",
    ])));
    assert_eq!(pulled, a);
    let at_registry = registry.requests();
    assert!(
        at_registry
            .iter()
            .any(|r| r.header("authorization") == Some(credentials)),
        "the registry got the credentials"
    );
    let at_cdn = cdn.requests();
    assert_eq!(
        at_cdn.len(),
        blobs.len(),
        "every blob came from the other host"
    );
    for r in &at_cdn {
        assert_eq!(
            r.header("authorization"),
            None,
            "{} carried credentials",
            r.target
        );
    }
}
