"""Signed model versions: an attacker who can write the registry but lacks the signing key
cannot get a model loaded (tamper-and-resign), and every loader refuses unsigned versions when a
verification key is configured."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import stat
from pathlib import Path

import pytest

from kfops.cli import main
from kfops.errors import ConfigError, RegistryError
from kfops.registry import MANIFEST, Registry, verify_dir
from kfops.signing import SIGNATURE, generate_keypair, load_signer, load_verifier
from tests.unit.test_serving_fixtures import MODEL, artifacts, register_version


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "keys")


@pytest.fixture
def signed_registry(
    tmp_path: Path, keys: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Registry:
    """penguins v1 (champion) registered with KFOPS_MODEL_SIGNING_KEY set; the env then holds
    only the verification key, as a predictor pod's would."""
    for name in ("KFOPS_MODEL_SIGNING_KEY", "KFOPS_MODEL_VERIFY_KEY"):
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "registry"
    monkeypatch.setenv("KFOPS_MODEL_SIGNING_KEY", str(keys[0]))
    register_version(root, aliases=("champion",))
    monkeypatch.delenv("KFOPS_MODEL_SIGNING_KEY")
    monkeypatch.setenv("KFOPS_MODEL_VERIFY_KEY", str(keys[1]))
    return Registry(root)


def _resign_manifest_without_key(version_dir: Path) -> None:
    """What an attacker with write access to the registry does: recompute every sha256."""
    manifest_path = version_dir / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    for name in manifest["files"]:
        path = version_dir / name
        manifest["files"][name] = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest_path.chmod(0o644)
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _replace_model(version_dir: Path) -> None:
    path = version_dir / "model.joblib"
    path.chmod(0o644)
    path.write_bytes(pickle.dumps({"evil": "payload"}))


def test_keygen_writes_a_private_key_only_its_owner_reads(keys: tuple[Path, Path]) -> None:
    private, public = keys
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert load_signer(str(private)).key_id == load_verifier(str(public)).key_id
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        generate_keypair(private.parent)


def test_register_signs_and_loaders_verify(signed_registry: Registry) -> None:
    mv = signed_registry.resolve(MODEL, "champion")
    assert (mv.path / SIGNATURE).is_file()
    assert SIGNATURE not in mv.files  # the signature signs the manifest, not itself
    verify_dir(mv.path)
    signed_registry.verify(MODEL, "v1")


def test_tampered_and_rehashed_model_is_refused(signed_registry: Registry) -> None:
    mv = signed_registry.resolve(MODEL, "champion")
    _replace_model(mv.path)
    _resign_manifest_without_key(mv.path)
    # The sha256 manifest alone is fooled: it now matches the attacker's file ...
    verify_dir(mv.path, signature=False)
    # ... the signature is not.
    with pytest.raises(RegistryError, match="does not match"):
        verify_dir(mv.path)


def test_deleting_the_signature_is_refused(signed_registry: Registry) -> None:
    mv = signed_registry.resolve(MODEL, "champion")
    _replace_model(mv.path)
    _resign_manifest_without_key(mv.path)
    (mv.path / SIGNATURE).unlink()
    with pytest.raises(RegistryError, match="is not signed"):
        verify_dir(mv.path)


def test_resigning_with_the_attackers_own_key_is_refused(
    signed_registry: Registry, tmp_path: Path
) -> None:
    mv = signed_registry.resolve(MODEL, "champion")
    _replace_model(mv.path)
    _resign_manifest_without_key(mv.path)
    attacker = load_signer(str(generate_keypair(tmp_path / "attacker")[0]))
    record = attacker.signature_record((mv.path / MANIFEST).read_bytes())
    (mv.path / SIGNATURE).chmod(0o644)
    (mv.path / SIGNATURE).write_text(json.dumps(record))
    with pytest.raises(RegistryError, match="signed by key"):
        verify_dir(mv.path)
    # Claiming the trusted key id does not help either: the signature itself fails.
    trusted_id = load_verifier(str(tmp_path / "keys" / "verify.pem")).key_id
    (mv.path / SIGNATURE).write_text(json.dumps({**record, "key_id": trusted_id}))
    with pytest.raises(RegistryError, match="does not match"):
        verify_dir(mv.path)


def test_signed_version_copied_under_another_number_or_model_is_refused(
    signed_registry: Registry,
) -> None:
    v1 = signed_registry.resolve(MODEL, "v1").path
    as_v2 = v1.parent / "v2"
    shutil.copytree(v1, as_v2)
    with pytest.raises(RegistryError, match="not of penguins v2"):
        verify_dir(as_v2)
    other = signed_registry.models_dir / "other" / "versions" / "v1"
    shutil.copytree(v1, other)
    with pytest.raises(RegistryError, match="not of other v1"):
        verify_dir(other)
    # A bare copy such as KServe's /mnt/models carries no location: the signature alone rules.
    verify_dir(shutil.copytree(v1, signed_registry.root.parent / "mnt-models"))


def test_unsigned_versions_pass_without_a_key_and_fail_with_one(
    tmp_path: Path, keys: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("KFOPS_MODEL_SIGNING_KEY", "KFOPS_MODEL_VERIFY_KEY"):
        monkeypatch.delenv(name, raising=False)
    mv = register_version(tmp_path / "registry", aliases=("champion",))
    assert not (mv.path / SIGNATURE).exists()
    verify_dir(mv.path)  # no key configured: the sha256 manifest alone
    # The PEM text itself works too (a Kubernetes Secret exposed as an environment variable).
    monkeypatch.setenv("KFOPS_MODEL_VERIFY_KEY", keys[1].read_text())
    with pytest.raises(RegistryError, match="is not signed"):
        verify_dir(mv.path)


def test_every_loader_refuses_a_forged_version(signed_registry: Registry, tmp_path: Path) -> None:
    from kfops.serving.model import load_version

    mv = signed_registry.resolve(MODEL, "champion")
    load_version(mv.path, drift=False)  # the genuine version loads
    _replace_model(mv.path)
    _resign_manifest_without_key(mv.path)
    with pytest.raises(RegistryError, match="does not match"):
        load_version(mv.path, drift=False)  # the predictor (kfops serve, /mnt/models)
    with pytest.raises(RegistryError, match="does not match"):
        # validate, bless, monitoring and the trigger load the champion through this
        signed_registry.verify(MODEL)


def test_signing_key_inside_the_registry_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "registry"
    private, _ = generate_keypair(root / "keys")
    monkeypatch.setenv("KFOPS_MODEL_SIGNING_KEY", str(private))
    with pytest.raises(ConfigError, match="inside the registry"):
        Registry(root).register(MODEL, artifacts(), {"test": True})
    assert Registry(root).models() == []


def test_unreadable_or_wrong_keys_are_config_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys: tuple[Path, Path]
) -> None:
    monkeypatch.setenv("KFOPS_MODEL_SIGNING_KEY", str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="cannot read key file"):
        Registry(tmp_path / "r").register(MODEL, artifacts(), {})
    with pytest.raises(ConfigError, match="private key"):
        load_signer(str(keys[1]))  # a public key cannot sign
    (tmp_path / "junk.pem").write_text("-----BEGIN PUBLIC KEY-----\nnope\n")
    with pytest.raises(ConfigError, match="not a PEM Ed25519 public key"):
        load_verifier(str(tmp_path / "junk.pem"))


def test_cli_signs_an_existing_version_after_checking_its_hashes(
    tmp_path: Path, keys: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    for name in ("KFOPS_MODEL_SIGNING_KEY", "KFOPS_MODEL_VERIFY_KEY"):
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "registry"
    mv = register_version(root, aliases=("champion",))
    monkeypatch.setenv("KFOPS_MODEL_SIGNING_KEY", str(keys[0]))
    assert main(["keys", "sign", MODEL, "champion", "--registry", str(root)]) == 0
    monkeypatch.delenv("KFOPS_MODEL_SIGNING_KEY")
    monkeypatch.setenv("KFOPS_MODEL_VERIFY_KEY", str(keys[1]))
    verify_dir(mv.path)
    assert main(["models", MODEL, "v1", "--verify", "--registry", str(root)]) == 0
    assert "signed by key sha256:" in capsys.readouterr().out
    # A version whose files no longer match its manifest is not signed.
    v2 = register_version(root)
    _replace_model(v2.path)
    monkeypatch.setenv("KFOPS_MODEL_SIGNING_KEY", str(keys[0]))
    assert main(["keys", "sign", MODEL, "v2", "--registry", str(root)]) == 2
    assert "verification failed: model.joblib" in capsys.readouterr().err
    assert not (v2.path / SIGNATURE).exists()
