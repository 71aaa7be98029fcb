"""Writing output files: atomically, readable as the umask allows, errors as one line.

Outputs (run directories, reports, JUnit XML) are written to a temp file beside the
target and renamed over it, so a reader sees the old file or the new one, never half.
``mkstemp`` makes its file 0600, which would hide a report from a web server or a CI
artifact step; the finished file gets ``0o666 & ~umask`` like any file ``open`` makes.
A path that cannot be written (a folder where a file is wanted or the reverse, a
read-only folder, a full disk) is an :class:`OutputError` naming the path.

Temp files carry the writer's pid (``.<name>.<pid>.<random>.tmp``) so that a later
run can tell a killed writer's leftovers from a live writer's and remove only those.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from pathlib import Path

from rai_multi.errors import OutputError

_TMP_RE = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")


def current_umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    return 0o666 & ~current_umask()


def describe_write_error(exc: OSError, path: Path) -> str:
    """One line saying why ``path`` cannot be written."""
    where = exc.filename or path
    if exc.errno == errno.ENOSPC:
        return f"cannot write {where}: no space left on the device (free some space and re-run; finished runs are kept)"
    if exc.errno == errno.EISDIR or (Path(path).is_dir() and exc.errno in (errno.EEXIST, errno.ENOTEMPTY)):
        return f"cannot write {path}: it is a directory; give a file name"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return f"cannot write {path}: a part of the path ({where}) is a file, not a folder"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {where}: permission denied (read-only folder?)"
    return f"cannot write {where}: {exc.strerror or exc}"


def make_dirs(path: Path) -> Path:
    """``mkdir -p`` with an OutputError when a file is in the way or the parent is read-only."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if path.exists() and not path.is_dir():
            raise OutputError(f"cannot use {path} as an output folder: it is a file") from None
        raise OutputError(describe_write_error(exc, path)) from None
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new, never half."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory; give a file name")
    make_dirs(path.parent)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), file_mode())
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        raise OutputError(describe_write_error(exc, path)) from None
    except BaseException:
        _discard(tmp)
        raise


def _discard(tmp: str | None) -> None:
    if tmp and os.path.exists(tmp):
        try:
            os.unlink(tmp)
        except OSError:
            pass


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` is running (a zombie counts as dead)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def remove_stale_temp_files(folder: Path) -> int:
    """Delete ``.<name>.<pid>.*.tmp`` files in ``folder`` whose writer is gone; returns how many."""
    removed = 0
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return 0
    for entry in entries:
        match = _TMP_RE.match(entry.name)
        if match and entry.is_file() and not pid_alive(int(match.group(1))):
            try:
                entry.unlink()
                removed += 1
            except OSError:
                pass
    return removed


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
