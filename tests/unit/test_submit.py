"""kfops submit/schedule/upload against recorded Kubeflow Pipelines v2beta1 exchanges.

A real HTTP server (http.server in a thread) replays tests/fixtures/kfp/<scenario>.json in
order and records every request; kfp.Client talks to it over real HTTP. The tests assert the
exact requests (method, path, key query and body fields, auth header) and the error messages.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from kfops import submit
from kfops.cli import main
from kfops.errors import ClusterError, ConfigError
from tests.conftest import REPO_ROOT, free_port

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "kfp"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Replay:
    exchanges: list[dict[str, Any]]
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests]

    def expected_calls(self) -> list[tuple[str, str]]:
        return [(e["request"]["method"], e["request"]["path"]) for e in self.exchanges]


def _handler(replay: Replay) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with lock:
                index = len(replay.requests)
                replay.requests.append(
                    Recorded(
                        self.command,
                        parts.path,
                        parse_qs(parts.query),
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                    )
                )
            status, payload = (
                599,
                {"error": f"unexpected request #{index}: {self.command} {parts.path}"},
            )
            if index < len(replay.exchanges):
                ex = replay.exchanges[index]
                if (ex["request"]["method"], ex["request"]["path"]) == (self.command, parts.path):
                    status, payload = ex["response"]["status"], ex["response"]["body"]
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = do_PATCH = _serve

    return Handler


@pytest.fixture
def kfp_replay(request: pytest.FixtureRequest) -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(scenario: str) -> Replay:
        data = json.loads((FIXTURES / f"{scenario}.json").read_text())
        replay = Replay(data["exchanges"])
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(replay))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        replay.url = f"http://127.0.0.1:{server.server_address[1]}"
        return replay

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in (
        "KFOPS_KFP_HOST",
        "KF_PIPELINES_ENDPOINT",
        "KFOPS_KFP_NAMESPACE",
        "KFOPS_KFP_TOKEN",
        "KFOPS_KFP_TOKEN_FILE",
        "KF_PIPELINES_UI_ENDPOINT",
        "KFOPS_IMAGE",
    ):
        monkeypatch.delenv(var, raising=False)
    # kfp.Client reads and writes ~/.config/kfp/context.json: keep it out of the real home.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("spec") / "training.yaml"
    return submit.compile_package("training", out, "kfops:0.1.0")


def required_args(package: Path) -> dict[str, Any]:
    """A value of the right type for every required parameter of the compiled pipeline."""
    params = submit.load_package(package)["root"]["inputDefinitions"]["parameters"]
    sample = {"STRING": "x", "NUMBER_INTEGER": 1, "NUMBER_DOUBLE": 0.5, "BOOLEAN": True}
    return {
        k: sample.get(d["parameterType"], "x") for k, d in params.items() if not d.get("isOptional")
    }


def target(replay: Replay, **kw: Any) -> submit.KfpTarget:
    return submit.KfpTarget.resolve(host=replay.url, environ=kw.pop("environ", {}), **kw)


# --------------------------------------------------------------------------------------------
# Request flows


def test_submit_and_wait_sends_the_recorded_requests(kfp_replay: Any, package: Path) -> None:
    replay = kfp_replay("submit_run_wait")
    args = {**required_args(package), "seed": 7}
    result = submit.submit_run(
        target(replay, environ={"KFOPS_KFP_TOKEN": "tok-123"}),
        package,
        arguments=args,
        experiment="kfops",
        run_name="nightly",
        wait=True,
        poll_seconds=0.01,
    )
    assert replay.calls() == replay.expected_calls()
    assert all(r.headers.get("authorization") == "Bearer tok-123" for r in replay.requests)
    listing = replay.requests[2]
    flt = json.loads(listing.query["filter"][0])
    assert flt["predicates"][0]["key"] == "display_name"
    assert flt["predicates"][0]["stringValue"] == "kfops"
    assert replay.requests[3].json()["display_name"] == "kfops"
    run_body = replay.requests[4].json()
    assert run_body["experiment_id"] == "0b8e3f6a-exp"
    assert run_body["display_name"] == "nightly"
    # A spec with a platform part (the registry PVC) is sent as {pipeline_spec, platform_spec}.
    sent = run_body["pipeline_spec"]
    assert sent["pipeline_spec"]["pipelineInfo"]["name"] == "kfops-training"
    assert "pvcMount" in str(sent["platform_spec"])
    images = {
        e["container"]["image"]
        for e in sent["pipeline_spec"]["deploymentSpec"]["executors"].values()
    }
    assert images == {"kfops:0.1.0"}
    assert run_body["runtime_config"]["parameters"]["seed"] == 7
    assert result == submit.RunResult(
        run_id="5c2d9a10-run",
        experiment_id="0b8e3f6a-exp",
        url=f"{replay.url}/#/runs/details/5c2d9a10-run",
        state="SUCCEEDED",
    )


def test_cli_submit_compiles_submits_waits_and_prints_url(
    kfp_replay: Any, package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    replay = kfp_replay("submit_run_wait")
    params = [f"--param={k}={json.dumps(v)}" for k, v in required_args(package).items()]
    out = tmp_path / "spec.yaml"
    code = main(
        [
            "submit",
            "training",
            "--host",
            replay.url,
            "--image",
            "kfops:9.9.9",
            "--out",
            str(out),
            "--wait",
            "--poll",
            "0.01",
            *params,
        ]
    )
    text = capsys.readouterr().out
    assert code == 0, text
    assert replay.calls() == replay.expected_calls()
    assert "authorization" not in replay.requests[0].headers
    assert f"run details: {replay.url}/#/runs/details/5c2d9a10-run" in text
    assert "run 5c2d9a10-run finished: SUCCEEDED" in text
    spec = next(yaml.safe_load_all(out.read_text()))
    assert {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()} == {
        "kfops:9.9.9"
    }
    assert replay.requests[4].json()["display_name"] == "kfops-training"


def test_cli_schedule_with_token_file(
    kfp_replay: Any, package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    replay = kfp_replay("schedule_existing_experiment")
    token = tmp_path / "token"
    token.write_text("sa-token-abc\n")
    params = [f"--param={k}={json.dumps(v)}" for k, v in required_args(package).items()]
    code = main(
        [
            "schedule",
            "training",
            "--host",
            replay.url,
            "--token-file",
            str(token),
            "--package",
            str(package),
            "--cron",
            "0 * * * *",
            "--name",
            "hourly",
            *params,
        ]
    )
    text = capsys.readouterr().out
    assert code == 0, text
    assert replay.calls() == replay.expected_calls()
    assert {r.headers.get("authorization") for r in replay.requests} == {"Bearer sa-token-abc"}
    body = replay.requests[3].json()
    assert body["display_name"] == "hourly"
    assert body["experiment_id"] == "0b8e3f6a-exp"
    assert body["trigger"]["cron_schedule"]["cron"] == "0 0 * * * *"
    assert body["mode"] == "ENABLE"
    assert int(body["max_concurrency"]) == 1
    assert body["no_catchup"] is True
    assert body["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "kfops-training"
    assert f"{replay.url}/#/recurringrun/details/9f1e77c2-rr" in text


def test_upload_creates_pipeline_then_named_version(kfp_replay: Any, package: Path) -> None:
    replay = kfp_replay("upload_new_pipeline")
    ref = submit.upload_version(
        target(replay), package, pipeline_name="kfops-training", version_name="git-1a2b3c4"
    )
    assert replay.calls() == replay.expected_calls()
    flt = json.loads(replay.requests[2].query["filter"][0])
    assert "kfops-training" in json.dumps(flt)
    created = replay.requests[3].json()
    assert created["display_name"] == "kfops-training"
    # The dashboard's Pipelines list shows the pipeline with the spec's description.
    description = submit.load_package(package)["pipelineInfo"]["description"]
    assert created["description"] == description
    upload = replay.requests[4]
    assert upload.query["description"] == [description]
    assert upload.query["name"] == ["git-1a2b3c4"]
    assert upload.query["pipelineid"] == ["3a7c0d55-pl"]
    assert upload.headers["content-type"].startswith("multipart/form-data")
    assert b"kfops-training" in upload.body and b"deploymentSpec" in upload.body
    assert ref == submit.VersionRef(
        "3a7c0d55-pl",
        "c41b2e90-ver",
        f"{replay.url}/#/pipelines/details/3a7c0d55-pl/version/c41b2e90-ver",
    )


# --------------------------------------------------------------------------------------------
# Errors a user meets


def test_401_names_host_and_how_to_pass_a_token(kfp_replay: Any, package: Path) -> None:
    replay = kfp_replay("unauthenticated")
    with pytest.raises(ClusterError) as err:
        submit.submit_run(target(replay), package, arguments=required_args(package))
    msg = str(err.value)
    assert replay.url in msg and "401" in msg and "KFOPS_KFP_TOKEN" in msg and "--token-file" in msg
    assert replay.calls() == replay.expected_calls()


def test_403_names_the_namespace(kfp_replay: Any, package: Path) -> None:
    replay = kfp_replay("forbidden_namespace")
    with pytest.raises(
        ClusterError, match=r"refused access in namespace 'team-a' \(403 Forbidden\)"
    ):
        submit.submit_run(
            target(replay, namespace="team-a", environ={"KFOPS_KFP_TOKEN": "t"}),
            package,
            arguments=required_args(package),
        )
    assert replay.calls() == replay.expected_calls()
    assert replay.requests[1].query["namespace"] == ["team-a"]


def test_missing_namespace(
    kfp_replay: Any, package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    replay = kfp_replay("missing_namespace")
    params = [f"--param={k}={json.dumps(v)}" for k, v in required_args(package).items()]
    code = main(
        [
            "submit",
            "--host",
            replay.url,
            "--namespace",
            "no-such-team",
            "--package",
            str(package),
            *params,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    expected = "error: get or create experiment 'kfops': namespace 'no-such-team' not found on "
    assert err.strip().splitlines() == [expected + replay.url]


def test_multi_user_without_namespace_is_a_config_error(kfp_replay: Any, package: Path) -> None:
    replay = kfp_replay("missing_namespace")
    with pytest.raises(ConfigError, match=r"multi-user.*--namespace"):
        submit.submit_run(target(replay), package, arguments=required_args(package))


def test_connection_refused_names_the_host(package: Path) -> None:
    host = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ClusterError) as err:
        submit.submit_run(
            submit.KfpTarget.resolve(host=host, environ={}),
            package,
            arguments=required_args(package),
        )
    assert str(err.value) == (
        f"cannot reach Kubeflow Pipelines host {host}: connection refused "
        "(is the service or the port-forward running?)"
    )


def test_cli_unreachable_host_from_env(
    monkeypatch: pytest.MonkeyPatch, package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("KFOPS_KFP_HOST", host)
    params = [f"--param={k}={json.dumps(v)}" for k, v in required_args(package).items()]
    assert main(["submit", "--package", str(package), *params]) == 2
    err = capsys.readouterr().err
    assert f"error: cannot reach Kubeflow Pipelines host {host}: connection refused" in err
    assert "Traceback" not in err


def test_silent_host_times_out_with_its_name() -> None:
    # A listening socket that never accepts: the TCP connect succeeds, no answer ever comes.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        host = f"http://127.0.0.1:{sock.getsockname()[1]}"
        tgt = submit.KfpTarget.resolve(host=host, environ={}, timeout=0.5)
        with pytest.raises(ClusterError, match=rf"host {host} did not answer within 0.5 s"):
            submit.check_endpoint(tgt)


def test_unresolvable_host() -> None:
    tgt = submit.KfpTarget.resolve(
        host="http://kfops-no-such-host.invalid:8080", environ={}, timeout=3
    )
    with pytest.raises(ClusterError, match=r"kfops-no-such-host\.invalid:8080"):
        submit.check_endpoint(tgt)


@pytest.mark.parametrize(
    ("kwargs", "environ", "match"),
    [
        ({}, {}, "no Kubeflow Pipelines host"),
        ({"host": "kfp.example.com"}, {}, "must start with http"),
        (
            {"host": "http://h", "token_file": "/nonexistent/token"},
            {},
            "token file '/nonexistent/token'",
        ),
        ({}, {"KF_PIPELINES_ENDPOINT": "ftp://x"}, "must start with http"),
    ],
)
def test_target_config_errors(kwargs: dict[str, Any], environ: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        submit.KfpTarget.resolve(environ=environ, **kwargs)


def test_target_precedence() -> None:
    env = {
        "KFOPS_KFP_HOST": "http://a:1",
        "KF_PIPELINES_ENDPOINT": "http://b:2",
        "KFOPS_KFP_NAMESPACE": "ns",
        "KFOPS_KFP_TOKEN": "t",
    }
    tgt = submit.KfpTarget.resolve(environ=env)
    assert (tgt.host, tgt.namespace, tgt.bearer()) == ("http://a:1", "ns", "t")
    assert submit.KfpTarget.resolve(host="http://c:3/", environ=env).host == "http://c:3"
    assert (
        submit.KfpTarget.resolve(environ={"KF_PIPELINES_ENDPOINT": "http://b:2"}).host
        == "http://b:2"
    )


def test_arguments_are_checked_against_the_spec(package: Path) -> None:
    spec = submit.load_package(package)
    args = required_args(package)
    with pytest.raises(ConfigError, match="unknown parameter 'sede'"):
        submit.check_arguments(spec, {**args, "sede": 1})
    missing = sorted(args)[0]
    with pytest.raises(ConfigError, match=f"needs parameter '{missing}'"):
        submit.check_arguments(spec, {k: v for k, v in args.items() if k != missing})
    with pytest.raises(ConfigError, match=r"parameter 'seed' .* NUMBER_INTEGER"):
        submit.check_arguments(spec, {**args, "seed": "seven"})
    assert submit.parse_params(["a=1", "b=x", 'c={"k": 2}']) == {"a": 1, "b": "x", "c": {"k": 2}}
    with pytest.raises(ConfigError, match="name=value"):
        submit.parse_params(["novalue"])


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("0 3 * * *", "0 0 3 * * *"),
        ("0 0 3 * * 1-5", "0 0 3 * * 1-5"),
        ("*/15 * * * *", "0 */15 * * * *"),
    ],
)
def test_cron(cron: str, expected: str) -> None:
    assert submit.normalize_cron(cron) == expected


@pytest.mark.parametrize("cron", ["daily", "0 3 * *", "0 3 * * * * *", "0 3 * * ; rm"])
def test_bad_cron(cron: str) -> None:
    with pytest.raises(ConfigError, match="is not a cron expression"):
        submit.normalize_cron(cron)


@pytest.mark.parametrize(
    ("image", "match"),
    [("kfops", "has no tag"), ("kfops:latest", "latest"), ("Bad Image", "not a valid")],
)
def test_cli_wrong_image_tag_fails_at_compile(
    image: str, match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing listens on this host: the image is rejected before any request is attempted.
    code = main(["submit", "--host", f"http://127.0.0.1:{free_port()}", "--image", image])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: image ") and match in err


def test_cli_bad_package(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.yaml"
    bad.write_text("a: 1\n")
    assert (
        main(
            [
                "upload",
                "--host",
                "http://127.0.0.1:9",
                "--package",
                str(bad),
                "--pipeline-version",
                "v",
            ]
        )
        == 2
    )
    assert "holds no KFP pipeline spec" in capsys.readouterr().err


def test_cli_submit_uploaded_version_runs_that_version(
    kfp_replay: Any, package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    replay = kfp_replay("submit_uploaded_version")
    params = [f"--param={k}={json.dumps(v)}" for k, v in required_args(package).items()]
    code = main(
        ["submit", "training", "--host", replay.url, "--package", str(package),
         "--upload-version", "git-1a2b3c4", *params]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0, text
    assert replay.calls() == replay.expected_calls()
    assert replay.requests[5].query["name"] == ["git-1a2b3c4"]
    run_body = replay.requests[-1].json()
    assert run_body["pipeline_version_reference"] == {
        "pipeline_id": "3a7c0d55-pl",
        "pipeline_version_id": "c41b2e90-ver",
    }
    assert "pipeline_spec" not in run_body
    assert run_body["display_name"] == "kfops-training"
    assert "uploaded version git-1a2b3c4" in text and "run details:" in text


def test_cli_submit_no_cache_gives_the_cacheable_steps_a_fresh_key(
    kfp_replay: Any, package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    replay = kfp_replay("submit_run_wait")
    params = [f"--param={k}={json.dumps(v)}" for k, v in required_args(package).items()]
    code = main(["submit", "training", "--host", replay.url, "--package", str(package),
                 "--no-cache", *params])  # fmt: skip
    assert code == 0, capsys.readouterr()
    run_body = replay.requests[4].json()
    # The pipeline parameter reaches the cache_keys task, nested tasks included ...
    assert run_body["runtime_config"]["parameters"]["use_cache"] is False
    # ... and the client's own switch turns off the top-level tasks' cache as well.
    tasks = run_body["pipeline_spec"]["pipeline_spec"]["root"]["dag"]["tasks"]
    assert not any(t.get("cachingOptions", {}).get("enableCache") for t in tasks.values())


def test_cli_submit_caches_by_default(
    kfp_replay: Any, package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    replay = kfp_replay("submit_run_wait")
    params = [f"--param={k}={json.dumps(v)}" for k, v in required_args(package).items()]
    assert main(["submit", "training", "--host", replay.url, "--package", str(package),
                 *params]) == 0  # fmt: skip
    run_body = replay.requests[4].json()
    assert "use_cache" not in run_body["runtime_config"]["parameters"]
    tasks = run_body["pipeline_spec"]["pipeline_spec"]["root"]["dag"]["tasks"]
    assert tasks["extract"]["cachingOptions"]["enableCache"] is True


def test_no_cache_on_a_pipeline_without_cacheable_steps(tmp_path: Path) -> None:
    spec = submit.load_package(submit.compile_package("monitoring", tmp_path / "m.yaml",
                                                      "kfops:0.1.0"))  # fmt: skip
    with pytest.raises(ConfigError, match="no cacheable steps"):
        submit.without_cache(spec, {})
