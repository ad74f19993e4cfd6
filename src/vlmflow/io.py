"""Atomic writes: an interrupted job never leaves a half-written output behind."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

_IMPORT_UMASK = os.umask(0o022)  # reading the umask sets it: done once, at import
os.umask(_IMPORT_UMASK)


def _umask() -> int:
    """The current umask, read without setting it (Linux); elsewhere the umask at import."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        return _IMPORT_UMASK


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; on success rename it onto `path`, with the mode of a
    newly created file (0o666 & ~umask, not mkstemp's 0o600). A failed write (a full disk) leaves
    neither file, and its error names `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as err:
        if err.errno is None or str(path) in str(err):
            raise
        raise type(err)(err.errno, f"writing {path}: {err.strerror}") from err
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet(df: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for st in self.streams:
            st.write(s)
            st.flush()

    def flush(self):
        for st in self.streams:
            st.flush()

    def __getattr__(self, name):  # isatty, encoding, fileno...: those of the console
        return getattr(self.streams[0], name)


@contextmanager
def log_to(path: str | os.PathLike | None):
    """Tee stdout and stderr (progress, warnings) to the console and the rule's log file at once;
    an exception raised in the block also leaves its traceback in the log."""
    import sys
    import traceback
    from contextlib import redirect_stderr, redirect_stdout

    if not path:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh, redirect_stdout(_Tee(sys.stdout, fh)), redirect_stderr(_Tee(sys.stderr, fh)):
        try:
            yield
        except BaseException:
            fh.write(traceback.format_exc())
            raise
