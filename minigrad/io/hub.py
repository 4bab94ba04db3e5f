"""Uploading a packed model folder to the Hugging Face Hub (``train.py push``), and the Hub settings.

Settings are Oxidizr's: ``HF_TOKEN`` and ``HF_USERNAME`` from the environment, else from a ``.env`` file in
the current directory; ``HF_ENDPOINT`` (the environment) points at another Hub. The token is a secret: it
is never printed, logged or put into a message. Errors from huggingface_hub can carry URLs, headers and the
server's words, so no message of theirs is shown as it is: each failure gets a message of ours, and the
little server text that is shown goes through :func:`redact` first.

huggingface_hub (the ``hub`` extra) is imported only when something is uploaded: ``--dry-run`` and pack do
not need it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from .checkpoint import CheckpointError

DEFAULT_ENDPOINT = "https://huggingface.co"
_TOKEN_LIKE = re.compile(r"(hf_[A-Za-z0-9]{6,}|Bearer\s+\S+)")


class HubError(CheckpointError):
    """An upload cannot happen or failed; the message says why and never holds the token."""


def read_dotenv(path: str) -> dict[str, str]:
    """KEY=VALUE lines of a .env file (``export`` prefixes, quotes and # comments allowed)."""
    values: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return values
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.removeprefix("export ").split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


def hub_setting(name: str, cwd: str = ".") -> tuple[str | None, str | None]:
    """(value, where it came from) of HF_TOKEN / HF_USERNAME / ...: the environment, else ``cwd/.env``."""
    if os.environ.get(name):
        return os.environ[name], "the environment"
    dotenv = os.path.join(cwd, ".env")
    value = read_dotenv(dotenv).get(name)
    return (value, dotenv) if value else (None, None)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with every secret, and anything shaped like a Hub token or a bearer header, replaced."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return _TOKEN_LIKE.sub("***", text)


def upload_plan(folder: str) -> list[tuple[str, int]]:
    """(path in the repo, size in bytes) of every file ``push`` uploads: all regular files in the folder,
    hidden ones (a name starting with '.') excepted, as the ignore patterns given to upload_folder say."""
    plan = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = os.path.join(root, name)
            if not name.startswith(".") and os.path.isfile(path) and not os.path.islink(path):
                plan.append((os.path.relpath(path, folder).replace(os.sep, "/"), os.path.getsize(path)))
    return plan


IGNORE_PATTERNS = [".*", "*/.*"]  # what upload_plan leaves out, in huggingface_hub's fnmatch terms


def check_packed(folder: str, flag: str = "--model") -> None:
    if not os.path.exists(folder):
        raise HubError(f"{folder}: no such packed model folder ({flag}); write one with: python train.py pack")
    if not os.path.isdir(folder):
        raise HubError(f"{folder}: {flag} must be a packed model folder, but it is a file")
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise HubError(f"{folder}: not a packed model folder (no config.json); write one with: python train.py pack")


def repo_id_of(folder: str) -> str:
    """hf/USER/NAME -> USER/NAME: the last two parts of the folder's path."""
    parts = os.path.normpath(os.path.abspath(folder)).split(os.sep)
    return f"{parts[-2]}/{parts[-1]}"


def find_packed(root: str) -> list[str]:
    """The packed folders ROOT/USER/NAME (each holding a config.json), sorted."""
    if not os.path.isdir(root):
        return []
    found = []
    for user in sorted(os.listdir(root)):
        udir = os.path.join(root, user)
        if user.startswith(".") or not os.path.isdir(udir):
            continue
        found += [os.path.join(udir, n) for n in sorted(os.listdir(udir))
                  if not n.startswith(".") and os.path.isfile(os.path.join(udir, n, "config.json"))]
    return found


def choose_packed(model: str | None, root: str, stdin=None, out=None) -> str:
    """The folder to push: ``--model`` (hf/USER/NAME, or USER/NAME under ``root``); without it, the only packed
    folder under ``root``, or a pick list on a terminal."""
    import sys

    if model:
        if not os.path.exists(model) and os.path.isdir(os.path.join(root, model)):
            model = os.path.join(root, model)
        check_packed(model)
        return model
    found = find_packed(root)
    if not found:
        raise HubError(f"{root}: no packed model folders here; write one with: python train.py pack (or pass --model)")
    if len(found) == 1:
        return found[0]
    stdin, out = stdin or sys.stdin, out or sys.stderr
    if stdin is None or not stdin.isatty():
        raise HubError(f"{root}: holds {len(found)} packed models ({', '.join(found)}); pass --model to pick one")
    for i, path in enumerate(found, 1):
        print(f"  {i}) {path}", file=out)
    while True:
        print(f"pick a model [1-{len(found)}]: ", end="", file=out, flush=True)
        answer = stdin.readline()
        if not answer:
            raise HubError("no model picked (end of input); pass --model")
        if answer.strip().isdigit() and 1 <= int(answer) <= len(found):
            return found[int(answer) - 1]


def dry_run_report(folder: str, private: bool) -> str:
    """What ``push`` would do: the repo, its visibility, the endpoint and every file with its size."""
    plan = upload_plan(folder)
    token, source = hub_setting("HF_TOKEN")
    lines = [f"dry run: would create (if needed) the {'private' if private else 'public'} model repo "
             f"{repo_id_of(folder)} on {endpoint()} and upload {len(plan)} files from {folder}:"]
    width = max((len(p) for p, _ in plan), default=0)
    lines += [f"  {p:<{width}}  {size:>12,} bytes" for p, size in plan]
    lines.append(f"  {'total':<{width}}  {sum(s for _, s in plan):>12,} bytes")
    lines.append(f"token: HF_TOKEN found in {source}" if token else
                 "token: none found (a real push needs HF_TOKEN, in the environment or a .env file)")
    return "\n".join(lines)


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _failure(e: Exception, step: str, repo_id: str, where: str, token: str) -> HubError:
    """Our message for an exception huggingface_hub raised while ``step``."""
    response = getattr(e, "response", None)
    status = getattr(response, "status_code", None)
    if status == 401:
        return HubError(f"{where}: the Hub refused the token while {step} (401 Unauthorized): HF_TOKEN is wrong "
                        "or expired; make a new one at https://huggingface.co/settings/tokens")
    if status == 403:
        return HubError(f"{where}: the token may not write to {repo_id} while {step} (403 Forbidden): use a token "
                        "with write access, and a --model folder under a namespace you own")
    if status is not None:
        said = redact(str(getattr(e, "server_message", "") or ""), (token,))[:200]
        return HubError(f"{where}: the Hub answered HTTP {status} while {step}" + (f": {said}" if said else ""))
    if type(e).__name__ == "OfflineModeIsEnabled":
        return HubError(f"{where}: HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, so huggingface_hub makes no "
                        f"requests; unset it to push ({step})")
    module = type(e).__module__.split(".")[0]
    if isinstance(e, OSError) or module in ("httpx", "httpx2", "httpcore", "requests", "urllib3"):
        return HubError(f"{where}: cannot reach the Hub while {step} ({type(e).__name__}); check the network "
                        "and HF_ENDPOINT")
    return HubError(f"{where}: upload failed while {step} ({type(e).__name__}: {redact(str(e), (token,))[:200]})")


def push(folder: str, private: bool, token: str, log: Callable[[str], None]) -> str:
    """Create the repo (if it is not there) and upload the folder in one commit; returns the repo's URL."""
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise HubError("push needs huggingface_hub: pip install 'minigrad[hub]'") from None
    repo_id, where = repo_id_of(folder), endpoint()
    api = HfApi(endpoint=where, token=token, library_name="minigrad")
    step = f"creating the repo {repo_id}"
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        step = f"uploading {folder}"
        log(f"uploading {len(upload_plan(folder))} files to {where}/{repo_id} ...")
        api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="model", ignore_patterns=IGNORE_PATTERNS,
                          commit_message="Upload a minigrad model (train.py push)")
    except Exception as e:  # noqa: BLE001 - every failure becomes one message of ours, without the token
        raise _failure(e, step, repo_id, where, token) from None
    return f"{where}/{repo_id}"
