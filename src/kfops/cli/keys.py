"""`kfops keys`: the Ed25519 key pair that signs model versions (kfops.signing)."""

from __future__ import annotations

import argparse
from typing import Any

from kfops.config import Settings


def register(sub: Any) -> None:
    keys = sub.add_parser("keys", help="make the model signing key pair, sign a version")
    ksub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    gen = ksub.add_parser(
        "generate",
        help="write signing.pem (private, 0600) and verify.pem into a directory",
        description="Create a new Ed25519 pair. Keep signing.pem OUTSIDE the registry (e.g. a "
        "Kubernetes Secret for the register step) and give verify.pem to every model loader "
        "(KFOPS_MODEL_VERIFY_KEY).",
    )
    gen.add_argument("--out", required=True, help="directory for the two PEM files")
    gen.set_defaults(func=cmd_generate)
    sign = ksub.add_parser(
        "sign",
        help="sign an existing version whose sha256 manifest verifies",
        description="Sign a version registered before signing was set up. It vouches for the "
        "files on disk NOW: run it only on versions you trust (KFOPS_MODEL_SIGNING_KEY).",
    )
    sign.add_argument("model", help="model name in the registry")
    sign.add_argument("version", help="version (v3) or alias (champion)")
    sign.add_argument("--registry", help="registry root (env KFOPS_REGISTRY_ROOT)")
    sign.set_defaults(func=cmd_sign)


def cmd_generate(args: argparse.Namespace) -> int:
    from kfops.signing import generate_keypair, load_signer

    private, public = generate_keypair(args.out)
    key_id = load_signer(str(private)).key_id
    print(f"signing key (keep secret, outside the registry): {private}")
    print(f"verification key (KFOPS_MODEL_VERIFY_KEY):        {public}")
    print(f"key id: {key_id}")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from kfops.errors import ConfigError
    from kfops.registry import Registry
    from kfops.signing import configured_signer, sign_existing

    registry = Registry(Settings.from_env(registry_root=args.registry).registry_root)
    signer = configured_signer(registry.root)
    if signer is None:
        raise ConfigError("set KFOPS_MODEL_SIGNING_KEY to the signing key to sign with")
    mv = registry.resolve(args.model, args.version)
    registry.verify_dir(mv.path, signature=False)  # the hashes must hold before we vouch
    path = sign_existing(mv.path, signer)
    print(f"signed {args.model} {mv.version} with key {signer.key_id}: {path}")
    return 0
