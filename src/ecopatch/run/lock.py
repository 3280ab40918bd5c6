"""The run lock: one scheduled run per ledger at a time, stale locks recovered (:class:`RunLock`)."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ecopatch.errors import (
    OutputError,
    RunLockedError,
)

if TYPE_CHECKING:

    pass

__all__ = [
    "LockInfo",
    "RunLock",
]

log = logging.getLogger("ecopatch.run")


@dataclass(frozen=True)
class LockInfo:
    """Who holds a run lock: process ID, host, start time (UTC) and a random token."""

    pid: int
    host: str
    started_at: str
    started_epoch: float
    token: str
    command: str = ""

    def describe(self) -> str:
        """``PID 1234 on host "x", started 2024-09-12T03:00:00Z``."""
        return f"PID {self.pid} on host {self.host!r}, started {self.started_at}"


class RunLock:
    """One scheduled run at a time per ledger: an exclusive lock file beside it.

    Parameters
    ----------
    path : path-like
        The lock file (``<ledger>.lock``).
    max_age_s : float
        A lock taken on another host whose heartbeat (file modification time)
        is older than this is stale.
    command : str
        What holds it, written into the file for people reading it.

    Notes
    -----
    See the module docstring, "Locking".  Use as a context manager, or call
    :meth:`acquire` and :meth:`release` (in ``finally``).
    """

    def __init__(self, path: str | os.PathLike[str], *, max_age_s: float = 24 * 3600.0, command: str = "") -> None:
        self.path = Path(path)
        self.max_age_s = float(max_age_s)
        self.command = command
        self.info: LockInfo | None = None

    def __repr__(self) -> str:
        return f"RunLock({str(self.path)!r}, held={self.info is not None})"

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    @staticmethod
    def read(path: str | os.PathLike[str]) -> LockInfo | None:
        """The holder recorded in a lock file (None if it is missing or unreadable)."""
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
            return LockInfo(int(d["pid"]), str(d["host"]), str(d["started_at"]), float(d["started_epoch"]),
                            str(d["token"]), str(d.get("command", "")))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def acquire(self) -> RunLock:
        """Take the lock, recovering a stale one.

        Raises
        ------
        RunLockedError
            Another live run holds it (the message names its PID, host and
            start time).
        OutputError
            The lock file cannot be created (read-only folder).
        """
        if self.info is not None:
            return self
        for _ in range(5):
            now = time.time()
            info = LockInfo(os.getpid(), socket.gethostname(),
                            _dt.datetime.fromtimestamp(now, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                            now, uuid.uuid4().hex, self.command)
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._recover_or_refuse()
                continue
            except OSError as exc:
                raise OutputError(f"cannot create the run lock {self.path}: {exc.strerror}; is the ledger's "
                                  "folder writable?") from exc
            try:
                os.write(fd, json.dumps(info.__dict__, ensure_ascii=False).encode("utf-8"))
                os.fsync(fd)
            except OSError as exc:
                os.close(fd)
                with contextlib.suppress(OSError):
                    self.path.unlink()
                raise OutputError(f"cannot write the run lock {self.path}: {exc.strerror}") from exc
            os.close(fd)
            self.info = info
            log.info("run lock %s taken (%s)", self.path, info.describe())
            return self
        raise RunLockedError(f"could not take the run lock {self.path}: other runs keep taking it; try again later")

    def _recover_or_refuse(self) -> None:
        try:
            raw = self.path.read_bytes()
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return  # released meanwhile: try again
        holder = self.read(self.path)
        why = self._stale_reason(holder, mtime)
        if why is None:
            who = holder.describe() if holder else "a run that is just starting"
            age = max(0.0, time.time() - (holder.started_epoch if holder else mtime))
            raise RunLockedError(
                f"another ecopatch run holds the lock {self.path}: {who} ({_duration(age)} ago). Only one run per "
                "ledger at a time: wait for it to finish. If that process is gone (e.g. the machine was "
                "restarted), the lock is recovered automatically; delete the file only if you are sure."
            )
        log.warning("recovering stale run lock %s (%s): %s", self.path,
                    holder.describe() if holder else "unreadable", why)
        aside = self.path.with_name(f"{self.path.name}.stale-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # another run recovered it first
        if aside.read_bytes() != raw:  # a fresh lock replaced the stale one meanwhile: put it back
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
        with contextlib.suppress(OSError):
            aside.unlink()

    def _stale_reason(self, holder: LockInfo | None, mtime: float) -> str | None:
        age = time.time() - mtime
        if holder is None:
            return f"the lock file is unreadable and {_duration(age)} old" if age > 60 else None
        if holder.host == socket.gethostname():
            if not _pid_alive(holder.pid, holder.started_epoch):
                return f"process {holder.pid} is no longer running on this host"
            return None
        if age > self.max_age_s:
            return (f"no heartbeat from host {holder.host!r} for {_duration(age)} "
                    f"(lock_max_age_hours = {self.max_age_s / 3600:g})")
        return None

    def refresh(self) -> None:
        """Heartbeat: touch the lock file (a long run stays visibly alive)."""
        if self.info is None:
            return
        try:
            os.utime(self.path)
        except FileNotFoundError:
            log.warning("run lock %s disappeared while this run held it", self.path)

    def release(self) -> None:
        """Remove the lock file, if it is still ours."""
        if self.info is None:
            return
        holder = self.read(self.path)
        if holder is not None and holder.token == self.info.token:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            log.info("run lock %s released", self.path)
        else:
            log.warning("run lock %s is no longer ours (%s); left as it is", self.path,
                        holder.describe() if holder else "missing")
        self.info = None


def _duration(seconds: float) -> str:
    s = int(max(0, seconds))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def _pid_alive(pid: int, since_epoch: float) -> bool:
    """Whether ``pid`` runs on this host and is the process that took a lock at ``since_epoch``."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    except OSError:  # pragma: no cover - e.g. Windows
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        fields_ = stat.read_text().rsplit(")", 1)[1].split()
        if fields_[0] in ("Z", "X"):  # zombie: dead, not yet reaped
            return False
        btime = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
        started = btime + int(fields_[19]) / os.sysconf("SC_CLK_TCK")
        if started > since_epoch + 5:  # the PID now belongs to a newer process
            return False
    except (OSError, IndexError, ValueError, StopIteration):
        pass  # no /proc: trust kill(pid, 0)
    return True

