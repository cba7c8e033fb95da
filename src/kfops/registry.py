"""Local model registry: immutable versions, movable aliases, lineage and a sha256 manifest.

Layout (see docs/ARCHITECTURE.md, "Registry layout")::

    <root>/models/<model>/versions/vN/{model.joblib, contract.json, ..., MANIFEST.json}
    <root>/models/<model>/aliases/<alias>.json   {"version", "updated_at", "previous"}

Crash safety: a version is assembled in ``<model>/.staging-<uuid>/`` (files fsynced) and renamed
to ``versions/vN`` in one ``rename`` (atomic; it fails if a concurrent writer already took vN,
then we retry with vN+1). Alias files are replaced with ``os.replace``. A crash therefore leaves
either the old state or the new one plus, at worst, a stale staging directory that listings
ignore and :meth:`Registry.gc` removes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, overload

import kfops
from kfops.errors import RegistryError
from kfops.io import default_file_mode, dumps_json, read_json, sha256_file, write_json_atomic
from kfops.signing import SIGNATURE, Signer, Verifier, check_version, signature_bytes

MANIFEST = "MANIFEST.json"
LINEAGE = "lineage.json"
MODEL_FILE = "model.joblib"
RESERVED_FILES = frozenset({MANIFEST, LINEAGE, SIGNATURE})
STAGING_PREFIX = ".staging-"
# The aliases kfops moves: a blessed, registered version becomes the challenger; deploying it
# makes it the champion (what `kfops serve` follows and what the next run is judged against).
CHAMPION = "champion"
CHALLENGER = "challenger"

# KServe validates InferenceService names as DNS-1035 labels: lowercase alphanumerics and '-',
# starting with a letter, ending alphanumeric, at most 63 characters.
_NAME_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_MAX_NAME = 63
_VERSION_RE = re.compile(r"v?([0-9]+)")
_VERSION_DIR_RE = re.compile(r"v([1-9][0-9]*)")
_CHUNK = 1 << 20
_MAX_RENAME_ATTEMPTS = 1000


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def validate_model_name(name: str) -> str:
    """Return ``name`` if it can be a model (and InferenceService) name, else RegistryError."""
    _validate_label("model name", name)
    return name


def validate_alias_name(alias: str) -> str:
    _validate_label("alias", alias)
    if _VERSION_RE.fullmatch(alias):
        raise RegistryError(f"alias {alias!r} looks like a version id; pick a word like 'champion'")
    return alias


def _validate_label(kind: str, name: object) -> None:
    if not isinstance(name, str) or not name:
        raise RegistryError(f"{kind} must be a non-empty string, got {name!r}")
    if len(name) > _MAX_NAME:
        raise RegistryError(f"{kind} {name!r} is {len(name)} characters long; the limit is 63")
    if not _NAME_RE.fullmatch(name):
        raise RegistryError(
            f"{kind} {name!r} is invalid: use lowercase letters, digits and '-', "
            "starting with a letter and ending with a letter or digit (e.g. 'penguins-rf')"
        )


def _version_id(ref: str | int) -> str | None:
    """'v3', '3' or 3 -> 'v3'; anything else -> None."""
    match = _VERSION_RE.fullmatch(str(ref).strip())
    if match is None or int(match.group(1)) < 1:
        return None
    return f"v{int(match.group(1))}"


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None  # no git binary (e.g. in the image) or a hung repository


def code_version() -> dict[str, Any]:
    """kfops version, git commit and dirty flag of the running code.

    ``git_commit``/``git_dirty`` are None outside a git checkout of kfops (e.g. an installed
    wheel inside some other project's repository is not attributed to that repository's
    commit). ``KFOPS_GIT_COMMIT`` wins, so an image built from a checkout can carry its commit.
    """
    env_commit = os.environ.get("KFOPS_GIT_COMMIT") or None
    if env_commit is not None:
        return {"kfops_version": kfops.__version__, "git_commit": env_commit, "git_dirty": None}
    commit, dirty = _git_state()
    return {"kfops_version": kfops.__version__, "git_commit": commit, "git_dirty": dirty}


@functools.cache
def _git_state() -> tuple[str | None, bool | None]:
    # Cached per process: the code that runs is the code imported at start, and git calls
    # cost tens of milliseconds per registration.
    package_dir = Path(kfops.__file__).resolve().parent
    tracked = _git(["ls-files", "--error-unmatch", "__init__.py"], package_dir)
    if tracked is None or tracked.returncode != 0:
        return None, None
    status = _git(["status", "--porcelain=v2", "--branch", "--untracked-files=no"], package_dir)
    if status is None or status.returncode != 0:
        return None, None
    lines = status.stdout.splitlines()
    for line in lines:
        oid = line.removeprefix("# branch.oid ").strip()
        if line.startswith("# branch.oid ") and re.fullmatch(r"[0-9a-f]{40}", oid):
            return oid, any(not entry.startswith("#") for entry in lines)
    return None, None  # a repository without commits


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_and_hash(src: Path, dst: Path) -> str:
    """Copy ``src`` to ``dst`` (fsynced) and return the sha256 of the bytes written."""
    digest = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        while chunk := fin.read(_CHUNK):
            digest.update(chunk)
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    # The registry's mode, not the source's: a 0600 temp file must not make a version
    # unreadable to a predictor running under another uid.
    os.chmod(dst, default_file_mode())
    return digest.hexdigest()


def _write_json_synced(path: Path, data: Any) -> str:
    """Write JSON into a staging dir (not yet visible, so no temp+rename) and return its sha256."""
    payload = dumps_json(data).encode("utf-8")
    _write_synced(path, payload)
    return hashlib.sha256(payload).hexdigest()


def _write_synced(path: Path, payload: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())


def _safe_file_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
    )


def _load_json_dict(path: Path, what: str) -> dict[str, Any]:
    try:
        data = read_json(path)
    except FileNotFoundError:
        raise RegistryError(f"{what}: {path} is missing") from None
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{what}: {path} is unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{what}: {path} does not hold a JSON object")
    return data


def verify_dir(
    path: str | os.PathLike[str], *, signature: bool = True, verifier: Verifier | None = None
) -> dict[str, Any]:
    """Recompute the sha256 of every file listed in ``<path>/MANIFEST.json``, then (unless
    ``signature`` is False) check the manifest's signature when a verification key is
    configured (``verifier``, default: KFOPS_MODEL_VERIFY_KEY, see kfops.signing).

    Returns the manifest. Raises RegistryError naming the first (sorted) file that is missing
    or differs, or why the signature is refused. Files not in the manifest are ignored (volume
    mounts may add e.g. lost+found). Works on any version directory, including ``/mnt/models``.
    """
    directory = Path(path)
    manifest_bytes = _read_manifest_bytes(directory)
    try:
        manifest = json.loads(manifest_bytes)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistryError(f"manifest: {directory / MANIFEST} is unreadable ({exc})") from None
    if not isinstance(manifest, dict):
        raise RegistryError(f"manifest: {directory / MANIFEST} does not hold a JSON object")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise RegistryError(f"manifest {directory / MANIFEST} has no 'files' table")
    for name in sorted(files):
        expected = files[name]
        if not _safe_file_name(name) or name == MANIFEST:
            raise RegistryError(f"manifest {directory / MANIFEST} lists an invalid name {name!r}")
        target = directory / name
        if not target.is_file():
            raise RegistryError(f"verification failed: {name} is missing from {directory}")
        actual = sha256_file(target)
        if actual != expected:
            raise RegistryError(
                f"verification failed: {name} in {directory} has sha256 {actual}, "
                f"manifest says {expected}"
            )
    if signature:
        if verifier is None:
            from kfops.signing import configured_verifier

            verifier = configured_verifier()
        check_version(directory, manifest_bytes, manifest, verifier)
    return manifest


def _read_manifest_bytes(directory: Path) -> bytes:
    try:
        return (directory / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise RegistryError(f"manifest: {directory / MANIFEST} is missing") from None
    except OSError as exc:
        raise RegistryError(f"manifest: {directory / MANIFEST} is unreadable ({exc})") from None


@dataclass(frozen=True)
class ModelVersion:
    """One immutable registered version (a directory KServe can mount at /mnt/models)."""

    model: str
    version: str
    path: Path
    lineage: dict[str, Any] = field(repr=False)
    manifest: dict[str, Any] = field(repr=False)

    @property
    def number(self) -> int:
        return int(self.version[1:])

    @property
    def files(self) -> dict[str, str]:
        """File name -> sha256, as recorded in the manifest."""
        return dict(self.manifest.get("files", {}))

    @property
    def model_sha256(self) -> str | None:
        return self.files.get(MODEL_FILE)

    def file(self, name: str) -> Path:
        """Path of a file of this version; RegistryError if the version has no such file."""
        if name not in self.files:
            raise RegistryError(
                f"{self.model}/{self.version} has no file {name!r}; "
                f"it has: {', '.join(sorted(self.files))}"
            )
        return self.path / name

    def verify(self) -> ModelVersion:
        verify_dir(self.path)
        return self

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ModelVersion:
        """Read a version directory (also a bare /mnt/models copy) without verifying hashes."""
        directory = Path(path)
        manifest = _load_json_dict(directory / MANIFEST, "manifest")
        lineage_path = directory / LINEAGE
        lineage = _load_json_dict(lineage_path, "lineage") if lineage_path.exists() else {}
        return cls(
            model=str(manifest.get("model", "")),
            version=str(manifest.get("version", directory.name)),
            path=directory,
            lineage=lineage,
            manifest=manifest,
        )


class Registry:
    """A registry rooted at a directory (``Settings.registry_root``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    # --- paths -----------------------------------------------------------------------------

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def model_dir(self, model: str) -> Path:
        return self.models_dir / validate_model_name(model)

    def _versions_dir(self, model: str) -> Path:
        return self.model_dir(model) / "versions"

    def _aliases_dir(self, model: str) -> Path:
        return self.model_dir(model) / "aliases"

    # --- listing ---------------------------------------------------------------------------

    def models(self) -> list[str]:
        """Names of models with at least one version, sorted."""
        if not self.models_dir.is_dir():
            return []
        return sorted(
            p.name
            for p in self.models_dir.iterdir()
            if p.is_dir() and _NAME_RE.fullmatch(p.name) and self._version_numbers(p.name)
        )

    def _version_numbers(self, model: str) -> list[int]:
        versions_dir = self._versions_dir(model)
        if not versions_dir.is_dir():
            return []
        numbers = []
        for p in versions_dir.iterdir():
            match = _VERSION_DIR_RE.fullmatch(p.name)
            if match and p.is_dir():
                numbers.append(int(match.group(1)))
        return sorted(numbers)

    def versions(self, model: str) -> list[ModelVersion]:
        """All versions of ``model`` sorted numerically (v2 before v10); [] if none."""
        return [self._load(model, f"v{n}") for n in self._version_numbers(model)]

    def latest(self, model: str) -> ModelVersion | None:
        numbers = self._version_numbers(model)
        return self._load(model, f"v{numbers[-1]}") if numbers else None

    def _load(self, model: str, version: str) -> ModelVersion:
        mv = ModelVersion.load(self._versions_dir(model) / version)
        # The directory name is authoritative; the manifest may come from elsewhere.
        return ModelVersion(model, version, mv.path, mv.lineage, mv.manifest)

    # --- aliases ---------------------------------------------------------------------------

    def _read_alias(self, model: str, alias: str) -> dict[str, Any] | None:
        path = self._aliases_dir(model) / f"{validate_alias_name(alias)}.json"
        if not path.exists():
            return None
        return _load_json_dict(path, f"alias {alias!r} of model {model!r}")

    def get_alias(self, model: str, alias: str) -> str | None:
        """Version id the alias points at, or None when the alias is not set."""
        record = self._read_alias(model, alias)
        return None if record is None else str(record["version"])

    def alias_record(self, model: str, alias: str) -> dict[str, Any] | None:
        """The alias file: {"version", "updated_at", "previous"}, or None."""
        return self._read_alias(model, alias)

    def aliases(self, model: str) -> dict[str, str]:
        """Alias name -> version id for ``model``."""
        directory = self._aliases_dir(model)
        if not directory.is_dir():
            return {}
        result = {}
        for p in sorted(directory.glob("*.json")):
            if p.name.startswith(".") or not _NAME_RE.fullmatch(p.stem):
                continue
            result[p.stem] = str(_load_json_dict(p, f"alias {p.stem!r}")["version"])
        return result

    @contextlib.contextmanager
    def _alias_lock(self, model: str) -> Iterator[None]:
        """Serialise read-modify-write of alias files so "previous" is never lost."""
        directory = self._aliases_dir(model)
        directory.mkdir(parents=True, exist_ok=True)
        # Lock the directory itself: no lock file, and a read-only fd suffices, so processes
        # running under another uid (a container step) are never blocked by file ownership.
        fd = os.open(directory, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def set_alias(self, model: str, alias: str, version: str | int) -> ModelVersion:
        """Point ``alias`` at ``version`` (atomic replace). Returns the target version."""
        validate_alias_name(alias)
        target = self._resolve_version(model, version)
        with self._alias_lock(model):
            current = self._read_alias(model, alias)
            if current is not None and current.get("version") == target.version:
                return target  # idempotent: keep "previous" pointing at a different version
            record = {
                "version": target.version,
                "updated_at": _now(),
                "previous": None if current is None else current.get("version"),
            }
            write_json_atomic(self._aliases_dir(model) / f"{alias}.json", record)
        return target

    def rollback(self, model: str, alias: str = CHAMPION) -> ModelVersion:
        """Point ``alias`` back at its previous version (a second rollback undoes the first)."""
        record = self._read_alias(model, alias)
        if record is None:
            raise RegistryError(f"model {model!r} has no alias {alias!r} to roll back")
        previous = record.get("previous")
        if not previous:
            raise RegistryError(
                f"alias {alias!r} of model {model!r} has no previous version to roll back to"
            )
        return self.set_alias(model, alias, str(previous))

    # --- resolution ------------------------------------------------------------------------

    def _require_model(self, model: str) -> None:
        validate_model_name(model)
        if not self._version_numbers(model):
            known = ", ".join(self.models()) or "none"
            raise RegistryError(f"unknown model {model!r} in {self.root}; known models: {known}")

    def _resolve_version(self, model: str, version: str | int) -> ModelVersion:
        self._require_model(model)
        vid = _version_id(version)
        numbers = self._version_numbers(model)
        if vid is None or int(vid[1:]) not in numbers:
            known = ", ".join(f"v{n}" for n in numbers)
            raise RegistryError(f"unknown version {version!r} of model {model!r}; known: {known}")
        return self._load(model, vid)

    def resolve(self, model: str, ref: str | int) -> ModelVersion:
        """Resolve an alias ("champion") or a version ("v3", "3") to a ModelVersion."""
        self._require_model(model)
        if _version_id(ref) is not None:
            return self._resolve_version(model, ref)
        ref_str = str(ref)
        if isinstance(ref, str) and _NAME_RE.fullmatch(ref_str):
            target = self.get_alias(model, ref_str)
            if target is not None:
                return self._resolve_version(model, target)
        known_versions = ", ".join(f"v{n}" for n in self._version_numbers(model))
        known_aliases = ", ".join(f"{a}->{v}" for a, v in self.aliases(model).items()) or "none"
        raise RegistryError(
            f"unknown version or alias {ref_str!r} of model {model!r}; "
            f"versions: {known_versions}; aliases: {known_aliases}"
        )

    def find(self, model: str, ref: str | int) -> ModelVersion | None:
        """Like :meth:`resolve` but None when the model, alias or version does not exist
        (e.g. the first training run asking for the champion). Bad names still raise."""
        validate_model_name(model)
        if _version_id(ref) is None:
            validate_alias_name(str(ref))
        try:
            return self.resolve(model, ref)
        except RegistryError:
            return None

    @overload
    def verify(
        self, model: str, ref: str | int = CHAMPION, *, missing_ok: Literal[False] = False
    ) -> ModelVersion: ...

    @overload
    def verify(
        self, model: str, ref: str | int = CHAMPION, *, missing_ok: Literal[True]
    ) -> ModelVersion | None: ...

    def verify(
        self, model: str, ref: str | int = CHAMPION, *, missing_ok: bool = False
    ) -> ModelVersion | None:
        """Resolve ``ref`` (alias or version id, default the champion) and recompute every
        sha256 in its manifest: the one way to get a version whose files can be trusted.

        RegistryError names an unknown model, alias or version, or the file that differs. With
        ``missing_ok`` a model without versions or an unset alias is None instead (the first
        training run has no champion to compare with); a tampered version still raises.
        """
        validate_model_name(model)  # a run with a bad name fails at its first step
        if missing_ok:
            if model not in self.models():
                return None
            if _version_id(ref) is None and self.get_alias(model, str(ref)) is None:
                return None
        mv = self.resolve(model, ref)
        verify_dir(mv.path)
        return mv

    @staticmethod
    def verify_dir(
        path: str | os.PathLike[str], *, signature: bool = True, verifier: Verifier | None = None
    ) -> dict[str, Any]:
        return verify_dir(path, signature=signature, verifier=verifier)

    # --- registration ----------------------------------------------------------------------

    def register(
        self,
        model_name: str,
        files: Mapping[str, str | os.PathLike[str]],
        lineage: Mapping[str, Any],
        *,
        aliases: Iterable[str] = (),
        signer: Signer | None = None,
    ) -> ModelVersion:
        """Copy ``files`` into a new immutable version ``vN`` and move ``aliases`` to it.

        ``files`` maps the name inside the version (``model.joblib``, ``contract.json``, ...) to
        a source path. ``lineage`` is stored as lineage.json with ``model``, ``version``,
        ``created_at``, ``code`` and (unless given) ``parent`` = the current champion added.
        The manifest is signed (MANIFEST.sig, kfops.signing) with ``signer``, by default the
        key of KFOPS_MODEL_SIGNING_KEY when it is set.
        """
        validate_model_name(model_name)
        alias_list = [validate_alias_name(a) for a in aliases]
        sources = self._check_files(files)
        if signer is None:
            from kfops.signing import configured_signer

            signer = configured_signer(self.root)
        model_dir = self.model_dir(model_name)
        versions_dir = model_dir / "versions"
        versions_dir.mkdir(parents=True, exist_ok=True)
        base_lineage = dict(lineage)
        base_lineage.setdefault("parent", self.get_alias(model_name, CHAMPION))
        base_lineage["code"] = code_version()
        base_lineage["model"] = model_name

        staging = model_dir / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
        staging.mkdir()
        # Hold a lock on the staging dir while we write it: gc() skips locked (live) ones.
        lock_fd = os.open(staging, os.O_RDONLY)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            hashes = {name: _copy_and_hash(src, staging / name) for name, src in sources.items()}
            version = self._publish(model_name, staging, versions_dir, hashes, base_lineage, signer)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            os.close(lock_fd)
        for alias in alias_list:
            self.set_alias(model_name, alias, version)
        return self._load(model_name, version)

    def _check_files(self, files: Mapping[str, str | os.PathLike[str]]) -> dict[str, Path]:
        if not files:
            raise RegistryError("register needs at least one file (e.g. model.joblib)")
        sources: dict[str, Path] = {}
        for name, src in files.items():
            if not _safe_file_name(name):
                raise RegistryError(f"file name {name!r} must be a plain file name (no '/')")
            if name in RESERVED_FILES or name.startswith("."):
                raise RegistryError(f"file name {name!r} is reserved for the registry")
            path = Path(src)
            if not path.is_file():
                raise RegistryError(f"file {name!r}: source {path} does not exist or is not a file")
            sources[name] = path
        return sources

    def _publish(
        self,
        model: str,
        staging: Path,
        versions_dir: Path,
        hashes: dict[str, str],
        lineage: dict[str, Any],
        signer: Signer | None = None,
    ) -> str:
        """Write lineage+manifest (+signature) for the next free vN and rename staging into
        place: the version appears complete and signed, or not at all."""
        number = max(self._version_numbers(model), default=0) + 1
        created_at = _now()
        for _attempt in range(_MAX_RENAME_ATTEMPTS):
            version = f"v{number}"
            full_lineage = {**lineage, "version": version, "created_at": created_at}
            all_hashes = {**hashes, LINEAGE: _write_json_synced(staging / LINEAGE, full_lineage)}
            manifest = {"model": model, "version": version, "files": all_hashes}
            _write_json_synced(staging / MANIFEST, manifest)
            if signer is not None:
                record = signer.signature_record((staging / MANIFEST).read_bytes())
                _write_synced(staging / SIGNATURE, signature_bytes(record))
            _fsync_dir(staging)
            try:
                os.rename(staging, versions_dir / version)
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                # A concurrent writer took vN: try the next free number.
                number = max(max(self._version_numbers(model), default=0), number) + 1
                continue
            _fsync_dir(versions_dir)
            return version
        raise RegistryError(
            f"could not allocate a version for model {model!r} (too much contention)"
        )

    # --- maintenance -----------------------------------------------------------------------

    def gc(self, min_age_seconds: float = 3600.0) -> list[Path]:
        """Remove staging dirs (and alias temp files) left by crashed writers. Returns them.

        A staging dir still locked by a live writer, or younger than ``min_age_seconds``, is
        kept.
        """
        removed: list[Path] = []
        if not self.models_dir.is_dir():
            return removed
        now = time.time()
        for model_dir in self.models_dir.iterdir():
            if not model_dir.is_dir():
                continue
            candidates = list(model_dir.glob(f"{STAGING_PREFIX}*"))
            aliases_dir = model_dir / "aliases"
            if aliases_dir.is_dir():
                candidates += [p for p in aliases_dir.glob(".*.json.*") if p.is_file()]
            for path in candidates:
                try:
                    if now - path.lstat().st_mtime < min_age_seconds:
                        continue
                except FileNotFoundError:
                    continue
                if path.is_dir():
                    if _locked(path):
                        continue
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed.append(path)
        return removed


def _locked(directory: Path) -> bool:
    """True when a live writer holds the staging directory's lock."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except FileNotFoundError:
        return True  # it was just renamed into place
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
