#!/usr/bin/env python3
"""A Meridian client in Python: search a node over standard TLS, fetch a
record and verify its origin's signature without trusting the node.

The stubs are generated from the repository's ``proto/`` with grpcio-tools
on first use (into ``gen/`` beside this file). Verification uses only the
DSSE rules and PyNaCl's Ed25519: a record is trusted because its origin
signed it, whoever relayed it.

    pip install -r requirements.txt
    meridian keys show --cert > node.pem        # on the node, or from its operator
    python meridian_client.py --address localhost:7400 --cacert node.pem search "sea ice"
    python meridian_client.py --address localhost:7400 --cacert node.pem \
        verify --origin polar --id ds-1 --public-key "$(meridian keys show --json | jq -r .public_key)"

Both commands print JSON (the protobuf JSON mapping) on stdout; errors go to
stderr with exit code 1.
"""

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
GEN_DIR = os.path.join(HERE, "gen")

# What the origin's signature covers (DSSE payload type of a record entry).
RECORD_TYPE = "application/vnd.meridian.record.v1+proto"
# Key ids are a domain-separated SHA-256 of the raw Ed25519 key, 16 bytes in hex.
KEY_ID_DOMAIN = b"meridian key id v1 ed25519\0"
# Envelopes above this size are refused before any work (as the node does).
MAX_ENVELOPE_BYTES = 1 << 20


class VerificationError(Exception):
    """The envelope does not carry a valid signature of the given key."""


def generate_stubs(proto_dir=PROTO_DIR, out_dir=GEN_DIR):
    """Generates the Python stubs from proto/ unless they are up to date."""
    protos = sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(proto_dir)
        for name in names
        if name.endswith(".proto")
    )
    if not protos:
        raise SystemExit(f"no .proto files under {proto_dir}")
    marker = os.path.join(out_dir, "meridian", "v1", "catalog_pb2_grpc.py")
    newest = max(os.path.getmtime(p) for p in protos)
    if not os.path.exists(marker) or os.path.getmtime(marker) < newest:
        os.makedirs(out_dir, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_dir}",
             f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *protos],
            check=True,
        )
    if out_dir not in sys.path:
        sys.path.insert(0, out_dir)


def pae(payload_type, payload):
    """DSSE v1 pre-authentication encoding: what the signature covers."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def key_id(public_key):
    """The key id Meridian derives from a raw 32-byte Ed25519 key."""
    return "ed25519:" + hashlib.sha256(KEY_ID_DOMAIN + public_key).digest()[:16].hex()


def verify_envelope(envelope, public_key):
    """Checks that `envelope` holds a record signed by `public_key` (raw 32
    bytes) and returns the signed LogEntry. Raises VerificationError."""
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey
    from meridian.v1 import record_pb2

    if envelope.ByteSize() > MAX_ENVELOPE_BYTES:
        raise VerificationError(f"envelope of {envelope.ByteSize()} bytes is over the limit")
    if envelope.payload_type != RECORD_TYPE:
        raise VerificationError(f"payload type {envelope.payload_type!r} is not a record")
    if len(public_key) != 32:
        raise VerificationError("the public key is not 32 bytes")
    wanted = key_id(public_key)
    signed = pae(envelope.payload_type, envelope.payload)
    signatures = [s for s in envelope.signatures if s.key_id == wanted]
    if not signatures:
        held = ", ".join(s.key_id for s in envelope.signatures) or "none"
        raise VerificationError(f"no signature by {wanted} (signed by: {held})")
    for signature in signatures:
        try:
            VerifyKey(public_key).verify(signed, signature.sig)
        except BadSignatureError:
            raise VerificationError(f"the signature by {wanted} does not verify") from None
    entry = record_pb2.LogEntry()
    entry.ParseFromString(envelope.payload)
    if not entry.HasField("record"):
        raise VerificationError("the signed entry holds no record")
    return entry


def connect(address, cacert, server_name=None):
    """A channel to a node's public listener, checking its certificate
    against `cacert` (PEM) as any standard TLS client does."""
    import grpc

    with open(cacert, "rb") as f:
        credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    return grpc.secure_channel(address, credentials, options=options)


def search(channel, query, limit=10, facets=False, timeout=10):
    from meridian.v1 import catalog_pb2, catalog_pb2_grpc

    stub = catalog_pb2_grpc.CatalogStub(channel)
    request = catalog_pb2.SearchRequest(query=query, limit=limit, facets=facets)
    return stub.Search(request, timeout=timeout)


def fetch_and_verify(channel, origin, record_id, public_key, timeout=10):
    """Fetches a record and checks it against its origin's key; returns the
    view and the signed entry. The record the node shows must be the one
    the origin signed."""
    from meridian.v1 import catalog_pb2, catalog_pb2_grpc

    stub = catalog_pb2_grpc.CatalogStub(channel)
    view = stub.GetRecord(catalog_pb2.GetRecordRequest(origin=origin, id=record_id), timeout=timeout)
    entry = verify_envelope(view.envelope, public_key)
    if entry.record.id != record_id or (origin and entry.origin != origin):
        raise VerificationError(
            f"the signed entry is {entry.origin}/{entry.record.id}, not {origin}/{record_id}")
    if entry.record != view.record:
        raise VerificationError("the record shown differs from the one the origin signed")
    return view, entry


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", required=True, help="HOST:PORT of the node's public listener")
    parser.add_argument("--cacert", required=True, help="PEM certificate to trust (meridian keys show --cert)")
    parser.add_argument("--server-name", help="name to check the certificate against, if not HOST")
    commands = parser.add_subparsers(dest="command", required=True)
    s = commands.add_parser("search", help="search the node's index")
    s.add_argument("query")
    s.add_argument("--limit", type=int, default=10)
    s.add_argument("--facets", action="store_true")
    v = commands.add_parser("verify", help="fetch a record and verify its origin's signature")
    v.add_argument("--origin", default="", help="the record's origin (empty: the node itself)")
    v.add_argument("--id", required=True)
    v.add_argument("--public-key", required=True, help="the origin's Ed25519 key, base64 (meridian keys show)")
    args = parser.parse_args(argv)

    generate_stubs()
    import grpc
    from google.protobuf.json_format import MessageToDict

    channel = connect(args.address, args.cacert, args.server_name)
    try:
        if args.command == "search":
            answer = search(channel, args.query, args.limit, args.facets)
            print(json.dumps(MessageToDict(answer), indent=2))
        else:
            try:
                public_key = base64.b64decode(args.public_key, validate=True)
            except ValueError:
                raise VerificationError("--public-key is not base64") from None
            view, entry = fetch_and_verify(channel, args.origin, args.id, public_key)
            print(json.dumps({
                "verified": True,
                "origin": entry.origin,
                "logIndex": str(entry.index),
                "keyId": key_id(public_key),
                "record": MessageToDict(entry.record),
            }, indent=2))
    except grpc.RpcError as e:
        print(f"error: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    except VerificationError as e:
        print(f"not verified: {e}", file=sys.stderr)
        return 1
    finally:
        channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
