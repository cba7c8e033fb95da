"""Registry: round trip, verification, aliases, concurrency and crash safety (real processes)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kfops.errors import KfopsError, RegistryError
from kfops.registry import MANIFEST, ModelVersion, Registry, verify_dir

REPO_ROOT = Path(__file__).resolve().parents[2]


def _artifacts(tmp_path: Path, tag: str = "a") -> dict[str, Path]:
    src = tmp_path / f"artifacts-{tag}"
    src.mkdir(exist_ok=True)
    files = {
        "model.joblib": os.urandom(4096),
        "contract.json": json.dumps({"schema_version": 1, "tag": tag}).encode(),
        "metrics.json": json.dumps({"accuracy": 0.9}).encode(),
    }
    out = {}
    for name, data in files.items():
        (src / name).write_bytes(data)
        out[name] = src / name
    return out


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every visible (non-staging) file under root with its bytes."""
    snap = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            snap[str(rel)] = p.read_bytes()
    return snap


@pytest.fixture
def reg(registry_root: Path) -> Registry:
    return Registry(registry_root)


def test_register_round_trip_with_hashes(reg: Registry, tmp_path: Path) -> None:
    files = _artifacts(tmp_path)
    mv = reg.register("penguins", files, {"run_id": "r1", "fingerprint": "abc"})
    assert (mv.model, mv.version, mv.number) == ("penguins", "v1", 1)
    assert mv.path == reg.root / "models/penguins/versions/v1"
    for name, src in files.items():
        assert mv.file(name).read_bytes() == src.read_bytes()
        assert mv.manifest["files"][name] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert mv.model_sha256 == hashlib.sha256(files["model.joblib"].read_bytes()).hexdigest()
    # lineage: caller fields plus registry fields, and itself covered by the manifest
    assert mv.lineage["run_id"] == "r1"
    assert mv.lineage["version"] == "v1" and mv.lineage["model"] == "penguins"
    assert mv.lineage["created_at"].endswith("Z")
    assert mv.lineage["code"]["kfops_version"]
    assert mv.lineage["parent"] is None
    assert "lineage.json" in mv.manifest["files"]
    assert MANIFEST not in mv.manifest["files"]
    assert mv.manifest["model"] == "penguins" and mv.manifest["version"] == "v1"
    assert verify_dir(mv.path) == mv.manifest
    assert reg.verify("penguins", "v1").version == "v1"
    with pytest.raises(RegistryError, match=r"no file 'nope\.bin'"):
        mv.file("nope.bin")


def test_git_commit_recorded_inside_checkout_and_env_override(
    reg: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mv = reg.register("m", _artifacts(tmp_path), {})
    commit = mv.lineage["code"]["git_commit"]
    assert commit is None or len(commit) == 40
    monkeypatch.setenv("KFOPS_GIT_COMMIT", "deadbeef")
    assert reg.register("m", _artifacts(tmp_path), {}).lineage["code"]["git_commit"] == "deadbeef"


def test_code_version_outside_a_kfops_checkout_is_none(tmp_path: Path) -> None:
    """An installed copy inside someone else's git repo is not given that repo's commit."""
    pkg = tmp_path / "site"
    shutil.copytree(REPO_ROOT / "src" / "kfops", pkg / "kfops")
    subprocess.run(["git", "init", "-q", str(pkg)], check=True)
    env = {**os.environ, "PYTHONPATH": str(pkg)}
    env.pop("KFOPS_GIT_COMMIT", None)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, kfops.registry as r; print(json.dumps(r.code_version()))",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert json.loads(out.stdout) == {
        "kfops_version": "0.1.0",
        "git_commit": None,
        "git_dirty": None,
    }


def test_versions_are_numeric_and_listed(reg: Registry, tmp_path: Path) -> None:
    files = _artifacts(tmp_path)
    for _ in range(11):
        reg.register("penguins", files, {})
    reg.register("other", files, {})
    assert [v.version for v in reg.versions("penguins")] == [f"v{i}" for i in range(1, 12)]
    assert reg.latest("penguins").version == "v11"  # type: ignore[union-attr]
    assert reg.models() == ["other", "penguins"]
    assert reg.versions("absent") == []
    assert Registry(reg.root / "nothing").models() == []


def test_verify_detects_tampered_byte_and_missing_file(reg: Registry, tmp_path: Path) -> None:
    mv = reg.register("penguins", _artifacts(tmp_path), {})
    model = mv.file("model.joblib")
    data = bytearray(model.read_bytes())
    data[100] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match=r"model\.joblib .*sha256"):
        reg.verify("penguins", "v1")
    mv2 = reg.register("penguins", _artifacts(tmp_path, "b"), {})
    mv2.file("contract.json").unlink()
    with pytest.raises(RegistryError, match=r"contract\.json is missing"):
        verify_dir(mv2.path)
    # a copied directory (as on /mnt/models) verifies on its own
    mv3 = reg.register("penguins", _artifacts(tmp_path, "c"), {})
    copy = tmp_path / "mnt-models"
    subprocess.run(["cp", "-r", str(mv3.path), str(copy)], check=True)
    assert Registry.verify_dir(copy)["version"] == "v3"
    assert ModelVersion.load(copy).version == "v3"
    (copy / MANIFEST).unlink()
    with pytest.raises(RegistryError, match="manifest"):
        verify_dir(copy)


def test_verify_rejects_manifest_path_traversal(reg: Registry, tmp_path: Path) -> None:
    mv = reg.register("penguins", _artifacts(tmp_path), {})
    manifest = json.loads((mv.path / MANIFEST).read_text())
    manifest["files"]["../../secret"] = "0" * 64
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(mv.path), str(copy)], check=True)
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(RegistryError, match="invalid name"):
        verify_dir(copy)


def test_alias_move_resolve_rollback(reg: Registry, tmp_path: Path) -> None:
    files = _artifacts(tmp_path)
    reg.register("penguins", files, {}, aliases=["champion"])
    assert reg.get_alias("penguins", "champion") == "v1"
    v2 = reg.register("penguins", files, {}, aliases=["champion", "staging"])
    assert v2.lineage["parent"] == "v1"  # champion at registration time
    assert reg.aliases("penguins") == {"champion": "v2", "staging": "v2"}
    record = reg.alias_record("penguins", "champion")
    assert record is not None
    assert record["previous"] == "v1" and record["updated_at"].endswith("Z")
    assert reg.resolve("penguins", "champion").version == "v2"
    assert reg.resolve("penguins", "v1").version == "v1"
    assert reg.resolve("penguins", "2").version == "v2"
    assert reg.resolve("penguins", 1).version == "v1"
    # setting the same version again keeps "previous" useful
    reg.set_alias("penguins", "champion", "v2")
    assert reg.alias_record("penguins", "champion")["previous"] == "v1"  # type: ignore[index]
    assert reg.rollback("penguins").version == "v1"
    assert reg.get_alias("penguins", "champion") == "v1"
    assert reg.rollback("penguins").version == "v2"  # a second rollback undoes the first
    with pytest.raises(RegistryError, match="no previous version"):
        reg.rollback("penguins", "staging")
    with pytest.raises(RegistryError, match="no alias 'canary'"):
        reg.rollback("penguins", "canary")
    assert reg.get_alias("penguins", "canary") is None


def test_verify_resolves_and_checks_the_champion_or_says_there_is_none(
    reg: Registry, tmp_path: Path
) -> None:
    # The first training run: no model, then a model without a champion -> None, not an error.
    assert reg.verify("penguins", missing_ok=True) is None
    reg.register("penguins", _artifacts(tmp_path), {})
    assert reg.verify("penguins", missing_ok=True) is None
    with pytest.raises(RegistryError, match="unknown version or alias 'champion'"):
        reg.verify("penguins")
    mv = reg.register("penguins", _artifacts(tmp_path, "b"), {}, aliases=["champion"])
    assert reg.verify("penguins").version == mv.version == "v2"  # the champion by default
    assert reg.verify("penguins", "v1", missing_ok=True).version == "v1"  # type: ignore[union-attr]
    # A tampered champion is never "missing": it raises, with or without missing_ok.
    mv.file("model.joblib").write_bytes(b"tampered")
    with pytest.raises(RegistryError, match=r"model\.joblib .*sha256"):
        reg.verify("penguins", missing_ok=True)
    with pytest.raises(RegistryError, match="model name"):
        reg.verify("Penguins")


def test_find_returns_none_for_missing(reg: Registry, tmp_path: Path) -> None:
    assert reg.find("penguins", "champion") is None  # first run: no model yet
    with pytest.raises(RegistryError, match="alias"):
        reg.find("penguins", "bad alias")
    reg.register("penguins", _artifacts(tmp_path), {})
    assert reg.find("penguins", "champion") is None
    assert reg.find("penguins", "v2") is None
    assert reg.find("penguins", "v1").version == "v1"  # type: ignore[union-attr]
    reg.set_alias("penguins", "champion", 1)
    assert reg.find("penguins", "champion").version == "v1"  # type: ignore[union-attr]
    with pytest.raises(RegistryError, match="alias"):
        reg.find("penguins", "Champion")
    with pytest.raises(RegistryError, match="model name"):
        reg.find("Penguins", "champion")


def test_resolve_unknown_lists_what_exists(reg: Registry, tmp_path: Path) -> None:
    reg.register("penguins", _artifacts(tmp_path), {}, aliases=["champion"])
    with pytest.raises(RegistryError, match=r"'v7'.*known: v1"):
        reg.resolve("penguins", "v7")
    with pytest.raises(RegistryError, match=r"'challenger'.*versions: v1; aliases: champion->v1"):
        reg.resolve("penguins", "challenger")
    with pytest.raises(RegistryError, match=r"unknown model 'iris'.*known models: penguins"):
        reg.resolve("iris", "champion")
    with pytest.raises(RegistryError, match=r"unknown version 'v9'"):
        reg.set_alias("penguins", "champion", "v9")
    assert reg.get_alias("penguins", "champion") == "v1"


@pytest.mark.parametrize(
    "name",
    ["", "Penguins", "pen_guins", "-pen", "pen-", "1penguins", "a" * 64, "pen.guins", "pen/x"],
)
def test_invalid_model_names(reg: Registry, tmp_path: Path, name: str) -> None:
    with pytest.raises(RegistryError, match="model name") as info:
        reg.register(name, _artifacts(tmp_path), {})
    assert isinstance(info.value, KfopsError)
    assert not (reg.root / "models").exists() or not any((reg.root / "models").iterdir())


def test_valid_edge_names(reg: Registry, tmp_path: Path) -> None:
    reg.register("a" * 63, _artifacts(tmp_path), {})
    reg.register("p-1", _artifacts(tmp_path), {}, aliases=["champion-2"])


@pytest.mark.parametrize("alias", ["Champion", "v3", "3", "cham pion", "x" * 64, ""])
def test_invalid_alias_names(reg: Registry, tmp_path: Path, alias: str) -> None:
    with pytest.raises(RegistryError, match="alias"):
        reg.register("penguins", _artifacts(tmp_path), {}, aliases=[alias])
    assert reg.versions("penguins") == []  # validated before anything is written


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("lineage.json", "reserved"),
        ("MANIFEST.json", "reserved"),
        ("a/b", "plain"),
        (".x", "reserved"),
    ],
)
def test_invalid_file_names(reg: Registry, tmp_path: Path, name: str, match: str) -> None:
    src = tmp_path / "f"
    src.write_text("x")
    with pytest.raises(RegistryError, match=match):
        reg.register("penguins", {name: src}, {})


def test_missing_source_file(reg: Registry, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"'model\.joblib'.*does not exist"):
        reg.register("penguins", {"model.joblib": tmp_path / "absent"}, {})
    with pytest.raises(RegistryError, match="at least one file"):
        reg.register("penguins", {}, {})


def test_exception_between_steps_leaves_registry_unchanged(
    reg: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg.register("penguins", _artifacts(tmp_path), {}, aliases=["champion"])
    before = _snapshot(reg.root)

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "rename", boom)
    with pytest.raises(OSError, match="disk on fire"):
        reg.register("penguins", _artifacts(tmp_path, "b"), {}, aliases=["champion"])
    assert _snapshot(reg.root) == before
    assert not list((reg.root / "models/penguins").glob(".staging-*"))  # cleaned up


# A child process that registers a version and SIGKILLs itself at a chosen point: no finally
# blocks or cleanup run, exactly like a power cut or OOM kill.
_CRASH_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import kfops.registry as r
    import kfops.io as kio

    root, point, srcdir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    files = {p.name: p for p in srcdir.iterdir()}

    def die(*a, **k):
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "mid-copy":
        real = os.fsync
        calls = []
        def fsync(fd):
            calls.append(fd)
            if len(calls) == 2:   # first file synced, second written but not synced
                die()
            real(fd)
        os.fsync = fsync
    elif point == "before-rename":
        os.rename = die
    elif point == "alias-write":
        os.replace = die      # version published, alias temp file written, not replaced
    r.Registry(root).register("penguins", files, {"run": "crash"}, aliases=["champion"])
    """
)


@pytest.mark.parametrize("point", ["mid-copy", "before-rename", "alias-write"])
def test_crash_at_any_point_leaves_no_half_version_or_alias(
    reg: Registry, tmp_path: Path, point: str
) -> None:
    reg.register("penguins", _artifacts(tmp_path), {}, aliases=["champion"])
    before = _snapshot(reg.root)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _CRASH_CHILD,
            str(reg.root),
            point,
            str(_artifacts(tmp_path, "b")["model.joblib"].parent),
        ],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    after = _snapshot(reg.root)
    if point == "alias-write":
        # The version landed complete; the alias was not touched (no half-written file).
        assert [v.version for v in reg.versions("penguins")] == ["v1", "v2"]
        reg.verify("penguins", "v2")
        assert reg.get_alias("penguins", "champion") == "v1"
        assert {k: v for k, v in after.items() if "/v2/" not in k} == before
    else:
        assert after == before
        assert [v.version for v in reg.versions("penguins")] == ["v1"]
        assert len(list((reg.root / "models/penguins").glob(".staging-*"))) == 1
    # Stale leftovers are ignored by listing and removed by gc once old enough.
    assert reg.gc(min_age_seconds=3600) == []
    removed = reg.gc(min_age_seconds=0)
    assert removed
    assert not list((reg.root / "models/penguins").glob(".staging-*"))
    assert not list((reg.root / "models/penguins/aliases").glob(".champion.json.*"))
    # The registry keeps working: the next version number follows what is published.
    nxt = reg.register("penguins", _artifacts(tmp_path, "c"), {}, aliases=["champion"])
    assert nxt.version == ("v3" if point == "alias-write" else "v2")
    assert reg.get_alias("penguins", "champion") == nxt.version


def test_gc_keeps_staging_dir_of_live_writer(reg: Registry, tmp_path: Path) -> None:
    import fcntl

    reg.register("penguins", _artifacts(tmp_path), {})
    live = reg.root / "models/penguins/.staging-live"
    live.mkdir()
    fd = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert reg.gc(min_age_seconds=0) == []
        assert live.exists()
    finally:
        os.close(fd)
    assert reg.gc(min_age_seconds=0) == [live]


_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from kfops.registry import Registry
    root, srcdir, n, tag = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    files = {p.name: p for p in srcdir.iterdir()}
    reg = Registry(root)
    for i in range(n):
        mv = reg.register("penguins", files, {"writer": tag, "i": i}, aliases=["champion"])
        print(mv.version, flush=True)
    """
)


def test_concurrent_registration_from_two_processes(reg: Registry, tmp_path: Path) -> None:
    n = 15
    srcdir = _artifacts(tmp_path)["model.joblib"].parent
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(reg.root), str(srcdir), str(n), tag],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    got = [line for out, _ in outputs for line in out.split()]
    assert len(got) == 2 * n and len(set(got)) == 2 * n  # distinct versions
    versions = reg.versions("penguins")
    assert [v.version for v in versions] == [f"v{i}" for i in range(1, 2 * n + 1)]
    for v in versions:
        v.verify()
        assert v.lineage["version"] == v.version  # lineage rewritten on retry
    assert {v.lineage["writer"] for v in versions} == {"a", "b"}
    champion = reg.alias_record("penguins", "champion")
    assert champion is not None and champion["version"] in got
    assert champion["previous"] in got and champion["previous"] != champion["version"]
    assert not list((reg.root / "models/penguins").glob(".staging-*"))


@pytest.fixture
def fast_tmp(tmp_path: Path) -> Iterator[Path]:
    """tmpfs where there is one: a SIGKILL (unlike a power cut) keeps the page cache, so the
    registry's fsyncs need not reach a disk, and several hundred runs stay quick."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="kfops-test-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _killed_writer(reg: Registry, files: dict[str, Path], kill_at: int) -> tuple[int, bytes]:
    """Fork a writer that registers and rolls back in a loop, and SIGKILLs itself at the
    ``kill_at``-th line executed in kfops.registry or kfops.io: a crash at a chosen program
    point, not at a moment picked by a timer. Returns (wait status, b"r"/b"b" per finished
    register/rollback)."""
    import traceback

    import kfops.io
    import kfops.registry

    traced = {kfops.registry.__file__, kfops.io.__file__}
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the writer
        os.close(read_end)
        try:
            count = 0

            def line(frame: Any, event: str, arg: Any) -> Any:
                nonlocal count
                if event == "line":
                    count += 1
                    if count >= kill_at:
                        os.kill(os.getpid(), signal.SIGKILL)
                return line

            sys.settrace(lambda frame, event, arg: line if frame.f_code.co_filename in traced
                         else None)  # fmt: skip
            while True:
                reg.register("penguins", files, {}, aliases=["champion"])
                os.write(write_end, b"r")
                reg.rollback("penguins")
                os.write(write_end, b"b")
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(3)  # only after an exception: the parent expects SIGKILL
    os.close(write_end)
    done = b""
    while chunk := os.read(read_end, 1024):
        done += chunk
    os.close(read_end)
    return os.waitpid(pid, 0)[1], done


def test_sigkill_at_every_line_of_register_and_rollback_keeps_every_visible_state_valid(
    fast_tmp: Path,
) -> None:
    """Kill a writer at each line of a register and a rollback (several hundred program points,
    each from the same starting registry): whatever is visible afterwards is complete and
    verifies, the aliases point at complete versions, and every finished operation is kept."""
    tmp_path = fast_tmp
    srcdir = tmp_path / "src"
    srcdir.mkdir()
    (srcdir / "model.joblib").write_bytes(os.urandom(64 << 10))
    (srcdir / "contract.json").write_text("{}")
    files = {p.name: p for p in srcdir.iterdir()}
    # A champion to begin with: the writer's rollback then has a previous version.
    start = tmp_path / "start"
    Registry(start).register("penguins", files, {}, aliases=["champion"])
    kill_at = 0
    while True:
        kill_at += 1
        root = tmp_path / "registry"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(start, root)
        reg = Registry(root)
        status, done = _killed_writer(reg, files, kill_at)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
        versions = reg.versions("penguins")
        for v in versions:
            v.verify()
        known = {v.version for v in versions}
        for alias, target in reg.aliases("penguins").items():
            assert target in known, (kill_at, alias)
            record = reg.alias_record("penguins", alias)
            assert record is not None and record["previous"] in known | {None}, kill_at
        assert len(versions) >= 1 + done.count(b"r"), kill_at  # every finished one is kept
        if done.startswith(b"rb"):  # the kill came after a whole register and rollback
            break
    assert kill_at > 100  # it really walked through both operations line by line
    reg.gc(min_age_seconds=0)
    assert not list((reg.root / "models/penguins").glob(".staging-*"))
