"""A working copy of the stack's Git repository: clone, replace a folder, commit, push.

The demo and the tests change what Argo CD syncs the way a user does: commit and
push to the Git server (`devstack/gitserver.py`). The git CLI does the work;
commits get a fixed identity and never read the user's or the system's config.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

_IDENTITY = {
    "GIT_AUTHOR_NAME": "sealkit devstack",
    "GIT_AUTHOR_EMAIL": "devstack@sealkit.invalid",
    "GIT_COMMITTER_NAME": "sealkit devstack",
    "GIT_COMMITTER_EMAIL": "devstack@sealkit.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
}


class GitError(Exception):
    """A git command failed; the message is its last line of output."""


class WorkingCopy:
    """A clone of `url` at `path` on `branch` (created on the first push if empty)."""

    def __init__(self, url: str, path: Path, branch: str = "main") -> None:
        self.url, self.path, self.branch = url, Path(path), branch
        if not (self.path / ".git").exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._git("clone", "--quiet", url, str(self.path), cwd=self.path.parent)
        self._git("checkout", "--quiet", "-B", branch)
        if self._git("ls-remote", "--heads", "origin", branch).strip():
            self._git("fetch", "--quiet", "origin", branch)
            self._git("reset", "--quiet", "--hard", f"origin/{branch}")

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        env = {**os.environ, **_IDENTITY}
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd or self.path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
            raise GitError(f"git {args[0]} exited {proc.returncode}: {last}")
        return proc.stdout

    def replace_folder(self, dest: str, source: Path) -> None:
        """Make `dest` (relative to the repository) an exact copy of the folder `source`."""
        target = self.path / dest
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target)

    def write(self, rel: str, text: str) -> None:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def commit_and_push(self, message: str) -> str:
        """Commit everything (if anything changed) and push; return the new HEAD commit."""
        self._git("add", "--all")
        if self._git("status", "--porcelain").strip():
            self._git("commit", "--quiet", "-m", message)
        for attempt in range(5):  # others (tests, the demo) push to the same repository
            try:
                self._git("push", "--quiet", "origin", f"HEAD:refs/heads/{self.branch}")
                break
            except GitError:
                if attempt == 4:
                    raise
                self._git("pull", "--quiet", "--rebase", "origin", self.branch)
        return self.head()

    def head(self) -> str:
        return self._git("rev-parse", "HEAD").strip()
