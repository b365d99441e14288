"""git and DVC, driven through their command lines (DVC's Python API is not stable).

Every DVC call runs in the campaign directory with analytics off and with this interpreter's
`bin/` first on PATH, so the stage commands (`python -m deimos.campaign.stages ...`) run in the same
environment as the caller. Output of `dvc repro` (the stages' progress bars) streams through to
the caller's stderr while its tail is kept for the error message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from deimos.errors import InputError

GIT_FALLBACK_IDENTITY = ("deimos-lab", "deimos-lab@localhost")
_TAIL_LINES = 25
# DVC's advice to the person at the keyboard; the flows commit and push themselves.
_DVC_HINTS = (
    "To track the changes with git",
    "git add ",
    "To enable auto staging",
    "dvc config core.autostage",
    "Use `dvc push`",
)


class CommandError(RuntimeError):
    """A git/DVC command failed for a reason that is not the user's input."""


def tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env["DVC_NO_ANALYTICS"] = "1"
    env.setdefault("GIT_TERMINAL_PROMPT", "0")
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


def dvc_executable() -> str:
    candidate = Path(sys.executable).parent / "dvc"
    return str(candidate) if candidate.exists() else "dvc"


def run_dvc(root: Path, args: Sequence[str], *, stream: bool = False) -> str:
    """Run `dvc ARGS` in `root`; return its combined output.

    Raises:
        InputError: a stage exited with status 2 (its own bad-input message is included).
        CommandError: any other failure.
    """
    cmd = [dvc_executable(), *args]
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    lines: list[str] = []
    with subprocess.Popen(
        cmd,
        cwd=root,
        env=tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            tail.append(line.rstrip("\n"))
            if stream and line.strip() and not line.lstrip().startswith(_DVC_HINTS):
                sys.stderr.write(line)
                sys.stderr.flush()
        code = proc.wait()
    output = "".join(lines)
    if code != 0:
        stage_errors = [t for t in tail if "deimos stage" in t and ": error: " in t]
        if stage_errors:
            raise InputError(stage_errors[-1].strip().removeprefix("deimos "))
        raise CommandError(f"`dvc {' '.join(args)}` failed in {root} (exit {code}):\n" +
                           "\n".join(tail))  # fmt: skip
    return output


def run_git(root: Path, args: Sequence[str], *, check: bool = True) -> str:
    cmd = ["git", *_identity(root), *args]
    done = subprocess.run(cmd, cwd=root, env=tool_env(), capture_output=True, text=True)
    if check and done.returncode != 0:
        raise CommandError(
            f"`git {' '.join(args)}` failed in {root}: {(done.stderr or done.stdout).strip()}"
        )
    return done.stdout


def _identity(root: Path) -> list[str]:
    """`-c user.name/email` when git has no identity configured (fresh CI machines)."""
    done = subprocess.run(["git", "config", "user.email"], cwd=root, capture_output=True, text=True)
    if done.returncode == 0 and done.stdout.strip():
        return []
    name, email = GIT_FALLBACK_IDENTITY
    return ["-c", f"user.name={name}", "-c", f"user.email={email}"]


def commit(root: Path, paths: Sequence[str], message: str) -> str | None:
    """Stage `paths` that exist and commit them if anything changed; return the commit hash."""
    existing = [p for p in paths if (root / p).exists()]
    if existing:
        run_git(root, ["add", "--", *existing])
    staged = subprocess.run(
        ["git", "diff", "--cached", "--quiet"], cwd=root, env=tool_env(), capture_output=True
    )
    if staged.returncode == 0:
        return None
    run_git(root, ["commit", "-q", "-m", message])
    return run_git(root, ["rev-parse", "HEAD"]).strip()


def data_status(root: Path, target: str | None = "data.dvc") -> dict[str, object]:
    """`dvc status [TARGET] --json`: empty when the workspace matches the .dvc file (or, with
    no target, when every stage is up to date)."""
    out = run_dvc(root, ["status", "--json", *([target] if target else [])])
    start = out.find("{")
    return json.loads(out[start:]) if start >= 0 else {}


def has_remote(root: Path) -> bool:
    out = run_dvc(root, ["remote", "list"])
    return bool(out.strip())


def init_repo(root: Path) -> None:
    """`git init` + `dvc init` in an empty directory."""
    if not (root / ".git").exists():
        run_git(root, ["init", "-q"])
    if not (root / ".dvc").exists():
        run_dvc(root, ["init", "-q"])
        run_dvc(root, ["config", "core.analytics", "false"])


def head(root: Path) -> str:
    return run_git(root, ["rev-parse", "HEAD"]).strip()


def require_tools() -> None:
    for tool, args in (("git", ["git", "--version"]), ("dvc", [dvc_executable(), "version"])):
        try:
            subprocess.run(args, capture_output=True, check=True, env=tool_env())
        except (OSError, subprocess.CalledProcessError) as exc:
            raise CommandError(f"{tool} is required but not usable: {exc}") from exc


def configure_s3_remote(
    root: Path,
    url: str,
    *,
    name: str = "storage",
    endpoint_url: str | None = None,
    profile: str | None = None,
) -> None:
    """Make `url` (``s3://BUCKET/PREFIX``) the campaign's default DVC remote `name`.

    Only the location goes into `.dvc/config` (which git tracks): dvc-s3 takes credentials from
    boto's chain (AWS_* environment variables, the named `profile`, an instance role), so a clone
    of the campaign pushes and pulls with whatever credentials its user has.

    Raises:
        InputError: `url` is not ``s3://BUCKET[/PREFIX]``, `name` is not a plain remote name, or
            `endpoint_url` is not http(s) or carries a user name or password.
    """
    if not isinstance(url, str) or not url.startswith("s3://") or not url[5:].split("/")[0]:
        raise InputError(f"DVC S3 remote URL must look like s3://BUCKET/PREFIX, got {url!r}")
    if "@" in url.split("/")[2]:
        raise InputError("DVC S3 remote URL must not contain credentials")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise InputError(f"DVC S3 remote URL {url!r} contains a control character")
    if not name or not all(ch.isalnum() or ch in "-_" for ch in name):
        raise InputError(f"DVC remote name {name!r} may hold only letters, digits, '-' and '_'")
    if endpoint_url is not None:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"S3 endpoint URL must be http(s)://HOST[:PORT], got {endpoint_url!r}")
        if parts.username is not None or parts.password is not None:
            raise InputError("S3 endpoint URL must not contain a user name or password")
    if profile is not None and (not profile or any(ord(ch) < 32 for ch in profile)):
        raise InputError(f"AWS profile name {profile!r} is empty or malformed")
    # Everything is checked before the first write, so bad input leaves .dvc/config as it was.
    run_dvc(root, ["remote", "add", "-d", "-f", name, url])
    if endpoint_url is not None:
        run_dvc(root, ["remote", "modify", name, "endpointurl", endpoint_url])
    if profile is not None:
        run_dvc(root, ["remote", "modify", name, "profile", profile])


def pushed(root: Path) -> bool:
    """True when the default DVC remote holds every output the workspace tracks.

    `dvc status --cloud --json` lists what differs between the cache and the remote: "new" (only
    here: to push) and "missing" (in neither) mean the remote lacks data; "deleted" (only on the
    remote, e.g. after `dvc gc` or in a fresh clone) does not.
    """
    out = run_dvc(root, ["status", "--cloud", "--json"])
    start = out.find("{")
    if start < 0:
        return True
    status = json.loads(out[start:])
    return all(state == "deleted" for state in status.values())
