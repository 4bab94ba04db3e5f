"""train.py push against a stand-in Hub on 127.0.0.1 (tests/fake_hub.py): the calls huggingface_hub makes
(repo id, visibility, every file and its bytes), the --dry-run listing, the .env file, each failure's one
message and exit status 2, and the token in no output at all."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

pytest.importorskip("huggingface_hub")
hub_constants = pytest.importorskip("huggingface_hub.constants")

from fake_hub import FakeHub  # noqa: E402
from packing_helpers import make_run  # noqa: E402

import train  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "hf_TESTsecretTOKEN0123456789abcdef"


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    base = make_run(tmp_path_factory.mktemp("push"), trainer={"max_steps": 4, "eval_interval": 2, "save_interval": 0})
    base.hf = os.path.join(base.root, "hf")
    assert train.main(["pack", "--out", base.run, "--username", "me", "--name", "tiny", "--output", base.hf]) == 0
    base.folder = os.path.join(base.hf, "me", "tiny")
    return base


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A clean directory (no .env) and a clean Hub environment: the LFS upload path, no cache in $HOME,
    offline mode off whatever the environment says (huggingface_hub reads these at import)."""
    monkeypatch.chdir(tmp_path)
    for var in ("HF_TOKEN", "HF_USERNAME", "HF_ENDPOINT", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE",
                "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(hub_constants, "HF_HUB_DISABLE_XET", True, raising=False)  # (older releases: no xet)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    return tmp_path


def run(argv, capsys, caplog):
    with caplog.at_level(logging.DEBUG):
        code = train.main(argv)
    out = capsys.readouterr()
    everything = out.out + out.err + caplog.text
    assert TOKEN not in everything and TOKEN[3:] not in everything
    return code, out.out, out.err


def listing(folder):
    return {name: os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder)}


def test_dry_run_lists_exactly_what_a_push_uploads(packed, env, capsys, caplog, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        code, out, _ = run(["push", "--model", packed.folder, "--dry-run"], capsys, caplog)
        assert code == 0 and hub.calls == []  # a dry run sends nothing
        assert "private model repo me/tiny" not in out and "public model repo me/tiny on " + hub.url in out
        listed = {line.split()[0]: int(line.split()[1].replace(",", "")) for line in out.splitlines()[1:-2]}
        assert listed == listing(packed.folder)
        assert "HF_TOKEN found in the environment" in out

        code, out, _ = run(["push", "--model", packed.folder, "--private"], capsys, caplog)
        assert code == 0 and f"{hub.url}/me/tiny" in out
    assert hub.created == [{"name": "tiny", "organization": "me", "visibility": "private", "type": "model"}]
    (commit,) = hub.commits
    assert commit["path"] == "/api/models/me/tiny/commit/main"
    assert {k: len(v) for k, v in commit["files"].items()} == listed
    for name, data in commit["files"].items():  # every byte, model.safetensors through the LFS upload
        with open(os.path.join(packed.folder, name), "rb") as f:
            assert f.read() == data, name
    assert f"Bearer {TOKEN}" in hub.auth and hub.cards and hub.cards[0].startswith("---\nlibrary_name:")


def test_token_and_username_from_a_dotenv_file_and_a_second_push(packed, env, capsys, caplog, monkeypatch):
    (env / ".env").write_text(f"# Oxidizr's settings\nHF_USERNAME=alice\nexport HF_TOKEN=\"{TOKEN}\"\n")
    code, out, err = run(["pack", "--out", packed.run, "--output", "hf"], capsys, caplog)
    assert code == 0 and os.path.isdir(env / "hf" / "alice" / "tiny-pack")  # HF_USERNAME, and model.name
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        code, out, _ = run(["push", "--dry-run"], capsys, caplog)  # the only folder under hf/
        assert code == 0 and "alice/tiny-pack" in out and f"found in {os.path.join('.', '.env')}" in out
        for _ in range(2):  # the second time the repo exists (409): exist_ok, and a second commit
            code, _, _ = run(["push"], capsys, caplog)
            assert code == 0
    assert [c["visibility"] for c in hub.created] == ["public", "public"] and len(hub.commits) == 2
    assert f"Bearer {TOKEN}" in hub.auth


def no_token(ctx, hub):
    return ["push", "--model", ctx.folder], "no Hugging Face token: set HF_TOKEN", False


FAILURES = {
    "no_token": no_token,
    "missing_folder": lambda ctx, hub: (["push", "--model", "hf/me/nothing"], "hf/me/nothing: no such packed model",
                                        True),
    "not_packed": lambda ctx, hub: (["push", "--model", ctx.run], "not a packed model folder (no config.json)", True),
    "folder_is_a_file": lambda ctx, hub: (["push", "--model", ctx.cfg], "must be a packed model folder", True),
    "nothing_packed": lambda ctx, hub: (["push"], "hf: no packed model folders here", True),
    "401": lambda ctx, hub: (["push", "--model", ctx.folder], "the Hub refused the token while creating the repo "
                             "me/tiny (401 Unauthorized)", True),
    "403": lambda ctx, hub: (["push", "--model", ctx.folder], "the token may not write to me/tiny while creating the "
                             "repo me/tiny (403 Forbidden)", True),
    "server_down": lambda ctx, hub: (["push", "--model", ctx.folder], "cannot reach the Hub while creating the repo "
                                     "me/tiny (ConnectError)", True),
}


@pytest.mark.parametrize("name", list(FAILURES))
def test_each_failure_is_one_message_and_exit_2(name, packed, env, capsys, caplog, monkeypatch):
    status = {"401": 401, "403": 403}.get(name)
    with FakeHub(status=status) as hub:
        argv, needle, with_token = FAILURES[name](packed, hub)
        if with_token:
            monkeypatch.setenv("HF_TOKEN", TOKEN)
        url = hub.url
        monkeypatch.setenv("HF_ENDPOINT", url)
        if name == "server_down":
            hub.__exit__()  # nothing listens on that port any more
        code, out, err = run(argv, capsys, caplog)
        if status:
            assert any(path == "/api/repos/create" for _, path, _ in hub.calls)
    assert code == 2, err
    assert needle in err and err.count("error: ") == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("status", [None, 401])
def test_no_token_in_any_output_of_the_command_line(packed, env, status):
    """The real command line, huggingface_hub's debug logging on: stdout and stderr hold no trace of the token."""
    with FakeHub(status=status) as hub:
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
        environ.update(HF_TOKEN=TOKEN, HF_ENDPOINT=hub.url, HF_HOME=str(env / "hf-home"), HF_HUB_DISABLE_XET="1",
                       HF_HUB_VERBOSITY="debug", HF_DEBUG="1", PYTHONPATH=ROOT)
        environ.pop("TRANSFORMERS_OFFLINE", None)
        r = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "push", "--model", packed.folder],
                           capture_output=True, text=True, timeout=120, env=environ, cwd=env)
    assert r.returncode == (0 if status is None else 2), r.stderr
    assert TOKEN not in r.stdout + r.stderr and TOKEN[3:] not in r.stdout + r.stderr
    assert f"Bearer {TOKEN}" in hub.auth  # it was sent, to the Hub only
