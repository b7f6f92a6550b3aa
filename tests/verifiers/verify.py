#!/usr/bin/env python3
"""Verify kiln's signatures and DSSE envelopes with code kiln did not write.

kiln's test suite runs this script to show that its output is readable by the ecosystem:
`cryptography` checks the ECDSA P-256 / SHA-256 DER signature over a cosign simple-signing
payload, `securesystemslib` checks a DSSE envelope (PAE, base64, DER) the way in-toto tooling
does, and `hashlib.scrypt` + PyNaCl's `SecretBox` read and write cosign's encrypted private-key
files (the layout of go-securesystemslib's `encrypted` package).

Usage:
  verify.py sig  --key PUB.pem --payload FILE --signature FILE_WITH_BASE64
  verify.py dsse --key PUB.pem --envelope FILE [--payload-type TYPE]
  verify.py genkey --out PREFIX     # PREFIX.pkcs8.pem, PREFIX.sec1.pem, PREFIX.pub
  verify.py cosign-decrypt --key PREFIX.key --public PREFIX.pub    # password in $COSIGN_PASSWORD
  verify.py cosign-encrypt --out PREFIX [--scrypt-n N]             # PREFIX.key, PREFIX.pub
  verify.py registry --registry HOST:PORT --repo REPO --digest sha256:HEX --key PUB.pem
            [--attestation PREDICATE_URI]
      # fetch the `sha256-HEX.sig` (and `.att`) tags over the distribution API (plain http,
      # urllib) and check every layer: blob digest, DER signature (cryptography), payload
      # fields; DSSE envelope (securesystemslib), statement subject and predicate type

Exit status: 0 verified (a JSON summary on stdout), 1 rejected (the reason on stderr),
2 usage or environment error.
"""

import argparse
import base64
import binascii
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError
    from securesystemslib.signer import SSlibKey
    import nacl.exceptions
    import nacl.secret
except ImportError as err:  # pragma: no cover - environment problem
    print(f"verify.py: missing dependency: {err} (pip install -r requirements.txt)", file=sys.stderr)
    sys.exit(2)


class Rejected(Exception):
    """The input was read but does not verify."""


def load_public_key(path):
    with open(path, "rb") as f:
        key = serialization.load_pem_public_key(f.read())
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise Rejected(f"{path}: not an ECDSA P-256 public key")
    return key


def cmd_sig(args):
    key = load_public_key(args.key)
    with open(args.payload, "rb") as f:
        payload = f.read()
    with open(args.signature, "rb") as f:
        try:
            signature = base64.b64decode(f.read().strip(), validate=True)
        except binascii.Error as err:
            raise Rejected(f"signature is not base64: {err}") from err
    try:
        # `cryptography` takes DER-encoded ECDSA signatures, as cosign writes them.
        key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as err:
        raise Rejected("signature does not verify over the payload") from err
    return {"verified": True, "payload_sha256": hashlib.sha256(payload).hexdigest()}


def cmd_dsse(args):
    key = load_public_key(args.key)
    with open(args.envelope, "rb") as f:
        try:
            envelope = Envelope.from_dict(json.load(f))
        except (KeyError, ValueError, TypeError) as err:
            raise Rejected(f"not a DSSE envelope: {err}") from err
    if args.payload_type is not None and envelope.payload_type != args.payload_type:
        raise Rejected(f"payloadType is {envelope.payload_type!r}, expected {args.payload_type!r}")
    # securesystemslib matches signatures to keys by keyid (a hint, per DSSE), so present the
    # one trusted key under each keyid the envelope names.
    keyids = sorted({sig.keyid for sig in envelope.signatures.values()})
    keys = [SSlibKey.from_crypto(key, keyid=keyid) for keyid in keyids if keyid]
    if not keys:
        raise Rejected("envelope has no signature with a keyid")
    try:
        envelope.verify(keys, 1)
    except VerificationError as err:
        raise Rejected(f"DSSE signature does not verify: {err}") from err
    return {
        "verified": True,
        "payloadType": envelope.payload_type,
        "payload_sha256": hashlib.sha256(envelope.payload).hexdigest(),
    }


def cmd_genkey(args):
    key = ec.generate_private_key(ec.SECP256R1())
    outputs = {
        ".pkcs8.pem": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        ".sec1.pem": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
        ".pub": key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    for suffix, data in outputs.items():
        with open(args.out + suffix, "wb") as f:
            f.write(data)
    return {"written": sorted(args.out + s for s in outputs)}


COSIGN_KEY_LABEL = "ENCRYPTED SIGSTORE PRIVATE KEY"
ACCEPTED_SCRYPT_N = (32768, 65536, 131072)


def pem_body(text, label):
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    if begin not in text or end not in text:
        raise Rejected(f"no {label} block")
    inner = text.split(begin, 1)[1].split(end, 1)[0]
    return base64.b64decode("".join(inner.split()), validate=True)


def pem_encode(label, data):
    b64 = base64.b64encode(data).decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""])


def scrypt_key(password, salt, n, r, p):
    # 128 * r * n bytes of scrypt memory, plus slack.
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=256 * r * n, dklen=32)


def cmd_cosign_decrypt(args):
    with open(args.key) as f:
        body = json.loads(pem_body(f.read(), COSIGN_KEY_LABEL))
    kdf, cipher = body["kdf"], body["cipher"]
    params = kdf["params"]
    if kdf["name"] != "scrypt" or cipher["name"] != "nacl/secretbox":
        raise Rejected(f"unexpected kdf/cipher {kdf['name']}/{cipher['name']}")
    if params["N"] not in ACCEPTED_SCRYPT_N or params["r"] != 8 or params["p"] != 1:
        raise Rejected(f"unexpected scrypt parameters {params}")
    password = os.environ.get("COSIGN_PASSWORD", "").encode()
    key = scrypt_key(password, base64.b64decode(kdf["salt"]), params["N"], 8, 1)
    try:
        der = nacl.secret.SecretBox(key).decrypt(
            base64.b64decode(body["ciphertext"]), base64.b64decode(cipher["nonce"])
        )
    except nacl.exceptions.CryptoError as err:
        raise Rejected("wrong password or corrupted key") from err
    private = serialization.load_der_private_key(der, password=None)
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise Rejected("the sealed key is not an EC key")
    spki = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected = load_public_key(args.public).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if spki != expected:
        raise Rejected("the private key does not match the public key")
    return {"verified": True, "scrypt_n": params["N"]}


def cmd_cosign_encrypt(args):
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt, nonce = os.urandom(32), os.urandom(24)
    password = os.environ.get("COSIGN_PASSWORD", "").encode()
    key = scrypt_key(password, salt, args.scrypt_n, 8, 1)
    sealed = nacl.secret.SecretBox(key).encrypt(der, nonce).ciphertext
    body = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": args.scrypt_n, "r": 8, "p": 1},
            "salt": base64.b64encode(salt).decode(),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(sealed).decode(),
    }
    with open(args.out + ".key", "w") as f:
        f.write(pem_encode(COSIGN_KEY_LABEL, json.dumps(body, separators=(",", ":")).encode()))
    with open(args.out + ".pub", "wb") as f:
        f.write(
            private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return {"written": [args.out + ".key", args.out + ".pub"]}


OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"


def registry_get(url, accept=None):
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()
    except urllib.error.HTTPError as err:
        raise Rejected(f"GET {url}: {err.code}") from err


def fetch_layers(base, repo, tag, media_type):
    manifest = json.loads(registry_get(f"{base}/v2/{repo}/manifests/{tag}", OCI_MANIFEST))
    layers = []
    for layer in manifest["layers"]:
        if layer["mediaType"] != media_type:
            continue
        blob = registry_get(f"{base}/v2/{repo}/blobs/{layer['digest']}")
        if "sha256:" + hashlib.sha256(blob).hexdigest() != layer["digest"]:
            raise Rejected(f"blob {layer['digest']} does not match its digest")
        layers.append((layer, blob))
    if not layers:
        raise Rejected(f"{tag} has no {media_type} layer")
    return layers


def cmd_registry(args):
    key = load_public_key(args.key)
    base = f"http://{args.registry}"
    hex_digest = args.digest.removeprefix("sha256:")
    result = {"signatures": 0, "attestations": 0}
    for layer, payload in fetch_layers(base, args.repo, f"sha256-{hex_digest}.sig", SIMPLE_SIGNING):
        signature = base64.b64decode(layer["annotations"][SIGNATURE_ANNOTATION], validate=True)
        try:
            key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue  # another key's signature
        claims = json.loads(payload)
        critical = claims["critical"]
        if sorted(claims) != ["critical", "optional"] or sorted(critical) != ["identity", "image", "type"]:
            raise Rejected(f"unexpected payload fields: {sorted(claims)} / {sorted(critical)}")
        if critical["type"] != "cosign container image signature":
            raise Rejected(f"unexpected payload type {critical['type']!r}")
        if critical["image"]["docker-manifest-digest"] != args.digest:
            raise Rejected(f"the payload signs {critical['image']['docker-manifest-digest']}, not {args.digest}")
        result["signatures"] += 1
        result["identity"] = critical["identity"]["docker-reference"]
    if result["signatures"] == 0:
        raise Rejected("no signature verifies with the key")
    if args.attestation:
        for layer, blob in fetch_layers(base, args.repo, f"sha256-{hex_digest}.att", DSSE):
            envelope = Envelope.from_dict(json.loads(blob))
            keyids = sorted({sig.keyid for sig in envelope.signatures.values()})
            keys = [SSlibKey.from_crypto(key, keyid=keyid) for keyid in keyids if keyid]
            try:
                envelope.verify(keys, 1)
            except VerificationError:
                continue
            statement = json.loads(envelope.payload)
            if statement["_type"] != "https://in-toto.io/Statement/v1":
                raise Rejected(f"unexpected statement type {statement['_type']!r}")
            if hex_digest not in [s["digest"].get("sha256") for s in statement["subject"]]:
                raise Rejected(f"the statement is about {statement['subject']}, not {args.digest}")
            if statement["predicateType"] != args.attestation:
                continue
            if layer["annotations"].get("predicateType") != args.attestation:
                raise Rejected("the layer's predicateType annotation disagrees with the statement")
            result["attestations"] += 1
            result["predicate"] = statement["predicate"]
        if result["attestations"] == 0:
            raise Rejected(f"no {args.attestation} attestation verifies with the key")
    return result


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sig = sub.add_parser("sig", help="verify a DER ECDSA signature over a payload")
    sig.add_argument("--key", required=True)
    sig.add_argument("--payload", required=True)
    sig.add_argument("--signature", required=True)
    dsse = sub.add_parser("dsse", help="verify a DSSE envelope")
    dsse.add_argument("--key", required=True)
    dsse.add_argument("--envelope", required=True)
    dsse.add_argument("--payload-type")
    genkey = sub.add_parser("genkey", help="write a P-256 key in PKCS#8 and SEC1 PEM")
    genkey.add_argument("--out", required=True)
    decrypt = sub.add_parser("cosign-decrypt", help="open a cosign encrypted private key")
    decrypt.add_argument("--key", required=True)
    decrypt.add_argument("--public", required=True)
    encrypt = sub.add_parser("cosign-encrypt", help="write a cosign encrypted key pair")
    encrypt.add_argument("--out", required=True)
    encrypt.add_argument("--scrypt-n", type=int, default=65536)
    reg = sub.add_parser("registry", help="verify .sig/.att tags fetched from a registry")
    reg.add_argument("--registry", required=True)
    reg.add_argument("--repo", required=True)
    reg.add_argument("--digest", required=True)
    reg.add_argument("--key", required=True)
    reg.add_argument("--attestation")
    args = parser.parse_args(argv)
    command = {
        "sig": cmd_sig,
        "dsse": cmd_dsse,
        "genkey": cmd_genkey,
        "cosign-decrypt": cmd_cosign_decrypt,
        "cosign-encrypt": cmd_cosign_encrypt,
        "registry": cmd_registry,
    }[args.command]
    try:
        result = command(args)
    except Rejected as err:
        print(f"verify.py: rejected: {err}", file=sys.stderr)
        return 1
    except (KeyError, ValueError, TypeError) as err:
        print(f"verify.py: rejected: malformed input: {err!r}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"verify.py: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
