#!/usr/bin/env python3
"""Verify kiln's signatures and DSSE envelopes with code kiln did not write.

kiln's test suite runs this script to show that its output is readable by the ecosystem:
`cryptography` checks the ECDSA P-256 / SHA-256 DER signature over a cosign simple-signing
payload, and `securesystemslib` checks a DSSE envelope (PAE, base64, DER) the way in-toto
tooling does.

Usage:
  verify.py sig  --key PUB.pem --payload FILE --signature FILE_WITH_BASE64
  verify.py dsse --key PUB.pem --envelope FILE [--payload-type TYPE]
  verify.py genkey --out PREFIX     # PREFIX.pkcs8.pem, PREFIX.sec1.pem, PREFIX.pub

Exit status: 0 verified (a JSON summary on stdout), 1 rejected (the reason on stderr),
2 usage or environment error.
"""

import argparse
import base64
import binascii
import hashlib
import json
import sys

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError
    from securesystemslib.signer import SSlibKey
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
    args = parser.parse_args(argv)
    command = {"sig": cmd_sig, "dsse": cmd_dsse, "genkey": cmd_genkey}[args.command]
    try:
        result = command(args)
    except Rejected as err:
        print(f"verify.py: rejected: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"verify.py: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
