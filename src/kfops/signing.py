"""Signed model versions: an Ed25519 signature over a version's MANIFEST.json.

The sha256 manifest (kfops.registry) detects corruption and partial writes, but anyone who can
write the registry can replace ``model.joblib`` and rewrite the manifest to match. A signature
made with a key kept OUTSIDE the registry closes that gap: ``register`` signs the exact bytes of
MANIFEST.json (which lists the sha256 of every file, lineage.json included) and writes
``MANIFEST.sig`` next to it, inside the staging directory, so a version appears signed or not
at all. Every step that loads a version (the predictor, bless loading the champion, monitoring,
the trigger, ``kfops models --verify``, deploy) refuses it when a verification key is configured
and the signature is missing, made by another key, or does not match the manifest.

Why Ed25519 from ``cryptography`` (already installed: kfp, kserve and google-auth need it) and
not an HMAC or OpenSSF ``model-signing``: with an asymmetric pair, the pods that only load
models (predictor, monitoring, trigger) hold the PUBLIC key, so a compromised predictor cannot
sign anything; an HMAC key would let every verifier forge. ``model-signing`` brings sigstore,
tuf and protobuf pins that fight kfp's exact pins, and would hash the directory a second time
into its own manifest; ours already lists every file's sha256.

What a signature does NOT cover, said plainly in README "Security": it proves that whoever held
the signing key registered this exact manifest, not that the model is good or its data honest
(anyone who can run the training pipeline with the key mounted can sign); it does not stop a
rollback to an older signed version (aliases are not signed); and nothing is checked when no
verification key is configured.

Keys: ``kfops keys generate`` writes ``signing.pem`` (private, mode 0600) and ``verify.pem``.
Settings (kfops.config): ``KFOPS_MODEL_SIGNING_KEY`` (register) and ``KFOPS_MODEL_VERIFY_KEY``
(every loader), each a PEM file path or the PEM text itself (a Kubernetes Secret exposed as an
environment variable). With only a signing key set, loaders verify with its public half.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfops.errors import ConfigError, RegistryError

log = logging.getLogger(__name__)

SIGNATURE = "MANIFEST.sig"
ALGORITHM = "ed25519"
# Domain separation: these signatures can never be replayed as signatures of something else.
_CONTEXT = b"kfops-model-manifest-v1\n"
_MAX_SIG_BYTES = 4096
SIGNING_FILE, VERIFY_FILE = "signing.pem", "verify.pem"


def _key_id(public_raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(public_raw).hexdigest()[:16]


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 public key that checks version signatures."""

    key: Any  # cryptography Ed25519PublicKey
    key_id: str
    source: str  # where it came from, for error messages

    def check(self, directory: Path, manifest_bytes: bytes) -> None:
        """RegistryError unless ``directory/MANIFEST.sig`` signs ``manifest_bytes`` (this key)."""
        from cryptography.exceptions import InvalidSignature

        sig_path = directory / SIGNATURE
        if not sig_path.is_file():
            raise RegistryError(
                f"verification failed: {directory} is not signed (no {SIGNATURE}) and a "
                f"verification key is configured ({self.source}); register it again with "
                "KFOPS_MODEL_SIGNING_KEY set, or sign it with `kfops keys sign`"
            )
        record = _read_signature(sig_path)
        if record.get("algorithm") != ALGORITHM:
            raise RegistryError(
                f"verification failed: {sig_path} uses algorithm {record.get('algorithm')!r}, "
                f"expected {ALGORITHM!r}"
            )
        if record.get("key_id") != self.key_id:
            raise RegistryError(
                f"verification failed: {directory} was signed by key {record.get('key_id')!r}, "
                f"not by the configured key {self.key_id} ({self.source})"
            )
        try:
            signature = base64.b64decode(str(record.get("signature", "")), validate=True)
            self.key.verify(signature, _CONTEXT + manifest_bytes)
        except (InvalidSignature, binascii.Error, ValueError):
            raise RegistryError(
                f"verification failed: the signature in {sig_path} does not match "
                f"{directory / 'MANIFEST.json'} (the manifest was changed after signing, or the "
                "signature was forged)"
            ) from None


@dataclass(frozen=True)
class Signer:
    """An Ed25519 private key that signs version manifests."""

    key: Any  # cryptography Ed25519PrivateKey
    key_id: str
    source: str

    def signature_record(self, manifest_bytes: bytes) -> dict[str, str]:
        signature = self.key.sign(_CONTEXT + manifest_bytes)
        return {
            "algorithm": ALGORITHM,
            "key_id": self.key_id,
            "signature": base64.b64encode(signature).decode("ascii"),
            "signs": "MANIFEST.json",
        }

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.key.public_key(), self.key_id, f"public half of {self.source}")


def signature_bytes(record: dict[str, str]) -> bytes:
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("ascii")


def _read_signature(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()[: _MAX_SIG_BYTES + 1]
    except OSError as exc:
        raise RegistryError(f"verification failed: cannot read {path}: {exc.strerror}") from None
    if len(raw) > _MAX_SIG_BYTES:
        raise RegistryError(f"verification failed: {path} is not a kfops signature (too large)")
    try:
        record = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise RegistryError(f"verification failed: {path} is not valid JSON") from None
    if not isinstance(record, dict):
        raise RegistryError(f"verification failed: {path} does not hold a JSON object")
    return record


# --- keys -----------------------------------------------------------------------------------


def _pem_bytes(value: str, setting: str) -> tuple[bytes, str]:
    """(PEM bytes, description) from a setting holding a file path or the PEM text itself."""
    if value.lstrip().startswith("-----BEGIN"):
        return value.encode("ascii", "replace"), f"{setting} (inline PEM)"
    path = Path(value).expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read key file {path}: {exc.strerror}") from None
    return data, f"{setting}={path}"


def load_verifier(value: str, setting: str = "KFOPS_MODEL_VERIFY_KEY") -> Verifier:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    data, source = _pem_bytes(value, setting)
    try:
        key: Any = serialization.load_pem_public_key(data)
    except ValueError:
        try:  # a private key works too: verify with its public half
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise ConfigError(f"{source}: not a PEM Ed25519 public key") from None
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{source}: a {type(key).__name__}, expected an Ed25519 key")
    return Verifier(key, _key_id(_raw_public(key)), source)


def load_signer(value: str, setting: str = "KFOPS_MODEL_SIGNING_KEY") -> Signer:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data, source = _pem_bytes(value, setting)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(
            f"{source}: not an unencrypted PEM Ed25519 private key (make one with "
            "`kfops keys generate`)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{source}: a {type(key).__name__}, expected an Ed25519 private key")
    return Signer(key, _key_id(_raw_public(key.public_key())), source)


def _raw_public(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def generate_keypair(out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write a new pair as ``signing.pem`` (0600) and ``verify.pem``; refuse to overwrite."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / SIGNING_FILE, directory / VERIFY_FILE
    for path in (private_path, public_path):
        if path.exists():
            raise ConfigError(f"{path} exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    public_path.write_bytes(public_pem)
    return private_path, public_path


# --- what the settings say --------------------------------------------------------------------


def configured_signer(registry_root: str | os.PathLike[str] | None = None) -> Signer | None:
    """The signer of ``KFOPS_MODEL_SIGNING_KEY``, or None. A key file inside the registry is
    refused: whoever can write the registry could then also sign."""
    from kfops.config import Settings

    value = Settings.from_env().model_signing_key
    if not value:
        return None
    signer = load_signer(value)
    if registry_root is not None and not value.lstrip().startswith("-----BEGIN"):
        key_path = Path(value).expanduser().resolve()
        root = Path(registry_root).expanduser().resolve()
        if key_path.is_relative_to(root):
            raise ConfigError(
                f"KFOPS_MODEL_SIGNING_KEY={key_path} lies inside the registry {root}: keep the "
                "signing key outside it, or anyone who can write the registry can sign"
            )
        mode = key_path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("signing key %s is readable by group/others (chmod 600 it)", key_path)
    return signer


def configured_verifier() -> Verifier | None:
    """``KFOPS_MODEL_VERIFY_KEY``, else the public half of ``KFOPS_MODEL_SIGNING_KEY``, else
    None (no signature check: the sha256 manifest alone, which detects corruption only)."""
    from kfops.config import Settings

    settings = Settings.from_env()
    if settings.model_verify_key:
        return load_verifier(settings.model_verify_key)
    if settings.model_signing_key:
        return load_signer(settings.model_signing_key).verifier
    return None


def check_version(
    directory: Path, manifest_bytes: bytes, manifest: dict[str, Any], verifier: Verifier | None
) -> None:
    """Signature check for a version directory (no-op without a verifier).

    Inside a registry (``.../<model>/versions/<vN>``) the signed manifest must also name that
    model and version: a signed version copied under another model or number is refused.
    """
    if verifier is None:
        return
    verifier.check(directory, manifest_bytes)
    if directory.parent.name == "versions":
        where = (directory.parent.parent.name, directory.name)
        signed = (str(manifest.get("model")), str(manifest.get("version")))
        if signed != where:
            raise RegistryError(
                f"verification failed: {directory} holds the signed manifest of "
                f"{signed[0]} {signed[1]}, not of {where[0]} {where[1]}"
            )


def sign_existing(directory: Path, signer: Signer) -> Path:
    """Sign an already registered version whose sha256 manifest verifies (``kfops keys sign``).
    The caller verified the hashes first: this vouches for what is on disk now."""
    from kfops.io import write_text_atomic

    manifest_bytes = (directory / "MANIFEST.json").read_bytes()
    path = directory / SIGNATURE
    write_text_atomic(path, signature_bytes(signer.signature_record(manifest_bytes)).decode())
    return path
