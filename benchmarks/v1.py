"""The code of an earlier commit, checked out beside the repository, to measure against side by side.

    checkout("d62612f") -> Path of a directory holding that commit's tree (layers/, functions/, tools/)

The tree is exported with `git archive` into the system's temporary directory (outside the
repository, so nothing of it is seen by git, pytest or ruff) and reused while it is there. A process
runs that code with `PYTHONPATH=<checkout>/layers/shared:<checkout>/tools`.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
V1 = "d62612f"  # key layout v1, before the sharded layout: the baseline of the speed targets


def checkout(rev: str = V1) -> Path:
    """A directory with the tree of commit `rev`, outside the repository; made once, then reused."""
    full = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = Path(tempfile.gettempdir()) / f"anl-rev-{full[:12]}"
    done = target / ".complete"
    if done.is_file():
        return target
    archive = subprocess.run(
        ["git", "archive", "--format=tar", full], cwd=ROOT, capture_output=True, check=True
    )
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    done.write_text(full + "\n")
    return target


def pythonpath(tree: Path) -> str:
    """PYTHONPATH that makes a process import `tree`'s code instead of the checkout's."""
    return f"{tree / 'layers' / 'shared'}:{tree / 'tools'}"
