"""Download a :class:`~tui.core.downloads.plan.Plan`: resumable, verified, cancellable.

Per file:

1. A final file with the planned size is taken as done (it got that name only after its
   hash matched). One with another size is not ours to overwrite: the file fails with a
   message saying to move it away.
2. ``<name>.part`` is opened for appending (never through a symbolic link: one planted at
   that name fails the file, its target untouched) and locked (``flock``), so two llmdeck processes
   never write the same file; a SIGKILL releases the lock. Existing bytes are hashed first
   (the hash state cannot be saved across processes) and the transfer resumes with
   ``Range: bytes=<have>-``.
3. Each attempt HEADs ``/resolve`` at the pinned commit for a fresh signed location, then
   GETs it (:mod:`fetch`); bytes are written and hashed as they arrive, in a writer thread
   so the network read never waits for the disk or the hash.
4. Connection errors, timeouts, 408/429/5xx and a cut connection are retried with
   exponential backoff (1, 2, 4 … 30 s; :data:`RETRIES` attempts without progress). A
   server answering 200 to a ``Range`` request restarts the file from 0.
5. At the end the sha256 (LFS) or git blob sha1 (small files) is compared with the Hub's.
   A mismatch deletes the ``.part`` (a wrong file is worth nothing and would only resume
   into the same mismatch) and fails that file. A match fsyncs and renames to the final name.

Cancel (:attr:`Download.cancel`, a ``threading.Event``) stops within ~0.2 s even on a stalled
socket (a watcher shuts the sockets down) and keeps every ``.part``.

Progress is reported as :class:`Progress` events to a callback, from worker threads, at most
every ``interval`` seconds per file plus every state change; :meth:`Download.events` turns them
into an iterator for front ends that prefer to pull.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import queue
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tui.core import safefiles
from tui.core.downloads import fetch, hub
from tui.core.downloads.errors import Busy, Cancelled, DownloadError, HubError, VerifyError
from tui.core.downloads.plan import Plan, PlanFile

BUF = 256 << 10  # bytes per read; 256 KiB beat 128 KiB and 1-4 MiB (bench_download.py)
RETRIES = 8
BACKOFF_MAX = 30.0
SPEED_WINDOW = 5.0  # seconds of history behind speed and ETA
WORKERS = 2
WRITEBACK = 32 << 20  # start the disk write of every 32 MiB as it completes (see _Writer)


def _writeback_starter() -> Callable[[int, int, int], None] | None:
    """``start(fd, offset, nbytes)``: begin writing a range to disk without waiting for it
    (Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``); None where the call does not exist."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int

    def start(fd: int, offset: int, nbytes: int) -> None:
        fn(fd, offset, nbytes, 2)  # SYNC_FILE_RANGE_WRITE; a failure only means fsync does it all

    return start


_start_writeback = _writeback_starter()


@dataclass(frozen=True)
class Progress:
    """One progress event. ``status`` is one of:

    ``queued`` · ``checking`` (hashing bytes already on disk before resuming) ·
    ``downloading`` · ``retrying`` (``message`` says why) · ``verifying`` · ``done`` ·
    ``present`` (complete before this run) · ``failed`` (``message``) · ``cancelled``.
    ``speed``/``eta`` are this file's (bytes/s over the last few seconds, seconds left);
    ``overall_*`` cover the whole plan; ``resumed_from`` is where this run's transfer began.
    """

    file: str
    status: str
    done: int
    total: int
    speed: float
    eta: float | None
    overall_done: int
    overall_total: int
    overall_speed: float
    overall_eta: float | None
    resumed_from: int = 0
    message: str = ""


@dataclass
class Result:
    done: list[str] = field(default_factory=list)  # files completed (now or before)
    failed: dict[str, str] = field(default_factory=dict)  # file -> one-line reason
    cancelled: bool = False
    bytes_fetched: int = 0  # over the network in this run
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.cancelled


class _Rate:
    """Bytes/s over a sliding window of samples."""

    def __init__(self, window: float = SPEED_WINDOW):
        self.window = window
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, t: float, total: int) -> None:
        self.samples.append((t, total))
        while len(self.samples) > 2 and t - self.samples[0][0] > self.window:
            self.samples.popleft()

    def speed(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


def _eta(left: int, speed: float) -> float | None:
    return left / speed if speed > 0 and left > 0 else (0.0 if left <= 0 else None)


class _Hasher:
    """sha256 for LFS files, git blob sha1 (``blob <size>\\0`` + data) for the others."""

    def __init__(self, pf: PlanFile):
        self.pf = pf
        if pf.sha256:
            self.h = hashlib.sha256()
            self.expected = pf.sha256.lower()
            self.kind = "sha256"
        else:
            self.h = hashlib.sha1(f"blob {pf.size}\0".encode())
            self.expected = (pf.blob_id or "").lower()
            self.kind = "git sha1"

    def reset(self) -> None:
        self.__init__(self.pf)


class _Writer:
    """The disk side of a transfer, in its own thread so the network read never waits for it:
    each buffer is written (straight to the ``O_APPEND`` fd) then hashed, then handed back to
    the reader. A thread per stage was measured no faster: sha256 is the slow stage either way.

    Every :data:`WRITEBACK` bytes the kernel is asked to start writing that range to disk, so
    the fsync before the rename finds little left to do (it was ~20 % of a 256 MiB transfer)
    and a 200 GB shard never piles gigabytes of dirty pages up.
    """

    def __init__(self, fh, hasher: _Hasher, n_bufs: int = 16):
        self.fd, self.hasher = fh.fileno(), hasher
        self.flushed = self.written = os.fstat(self.fd).st_size
        self.free: queue.Queue = queue.Queue()
        self.full: queue.Queue = queue.Queue()
        for _ in range(n_bufs):
            self.free.put(bytearray(BUF))
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="llmdeck-writer")
        self.thread.start()

    def _run(self) -> None:
        update = self.hasher.h.update
        while True:
            item = self.full.get()
            if item is None:
                return
            buf, n = item
            if self.error is None:
                try:
                    mv = memoryview(buf)[:n]
                    while mv:
                        mv = mv[os.write(self.fd, mv):]
                    update(memoryview(buf)[:n])
                    self.written += n
                    if _start_writeback and self.written - self.flushed >= WRITEBACK:
                        _start_writeback(self.fd, self.flushed, self.written - self.flushed)
                        self.flushed = self.written
                except BaseException as exc:  # disk full, I/O error: raised by buffer()/close()
                    self.error = exc
            self.free.put(buf)

    def buffer(self) -> bytearray:
        if self.error is not None:
            raise self.error
        return self.free.get()

    def submit(self, buf: bytearray, n: int) -> None:
        self.full.put((buf, n))

    def give_back(self, buf: bytearray) -> None:
        self.free.put(buf)

    def close(self) -> None:
        """Wait until every submitted buffer is written and hashed; raise a write error if any."""
        self.full.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


class Download:
    """Run a plan: ``Download(plan).run(on_progress)``; set ``.cancel`` from any thread."""

    def __init__(self, plan: Plan, *, workers: int = WORKERS, token: str | None = None,
                 retries: int = RETRIES, backoff: float = 1.0, interval: float = 0.1,
                 timeout: float | None = None, cancel: threading.Event | None = None,
                 force: bool = False):
        self.plan = plan
        self.force = force
        self.workers = max(1, workers)
        self.token = hub.token() if token is None else (token or None)
        self.retries = retries
        self.backoff = backoff
        self.interval = interval
        env_timeout = os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT")
        self.timeout = timeout or (float(env_timeout) if env_timeout else 10.0)
        self.cancel = cancel or threading.Event()
        self._lock = threading.Lock()
        self._emit_lock = threading.Lock()
        self._on_progress: Callable[[Progress], None] | None = None
        self._done: dict[str, int] = {}
        self._fetched = 0
        self._rates: dict[str, _Rate] = {}
        self._overall = _Rate()
        self._last_emit: dict[str, float] = {}
        self._resumed: dict[str, int] = {}
        self._socks: weakref.WeakSet = weakref.WeakSet()
        self.result = Result()

    # -- progress ------------------------------------------------------------------------
    def _emit(self, pf: PlanFile, status: str, done: int, *, message: str = "", force: bool = True) -> None:
        now = time.monotonic()
        counts = status != "checking"  # hashing kept bytes: `done` is hashed bytes, not new ones
        if not force and now - self._last_emit.get(pf.name, 0.0) < self.interval:
            if counts:
                with self._lock:
                    self._done[pf.name] = done
            return
        # one emitter at a time, so events arrive in order (overall_done never goes back)
        with self._emit_lock:
            with self._lock:
                if counts:
                    self._done[pf.name] = done
                self._last_emit[pf.name] = now
                rate = self._rates.get(pf.name)
                speed = rate.speed() if rate and status in ("downloading", "retrying") else 0.0
                o_done = sum(self._done.values())
                o_total = self.plan.total_bytes
                o_speed = self._overall.speed()
                ev = Progress(pf.name, status, done, pf.size, speed,
                              _eta(pf.size - done, speed) if status == "downloading" else None,
                              o_done, o_total, o_speed, _eta(o_total - o_done, o_speed),
                              self._resumed.get(pf.name, 0), message)
            cb = self._on_progress
            if cb is not None:
                cb(ev)

    def _count(self, pf: PlanFile, n: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._fetched += n
            self._overall.add(now, self._fetched)
            r = self._rates.setdefault(pf.name, _Rate())
            r.add(now, (r.samples[-1][1] if r.samples else 0) + n)

    # -- cancel watcher: shut sockets so a blocked read returns at once --------------------
    def _track(self, conn) -> None:
        def connect_hook(orig=conn.connect):
            orig()
            with self._lock:
                if conn.sock is not None:
                    self._socks.add(conn.sock)
            if self.cancel.is_set():
                self._shutdown_all()
        conn.connect = connect_hook

    def _untrack(self, sock) -> None:
        with self._lock:
            self._socks.discard(sock)

    def _shutdown_all(self) -> None:
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def _watch_cancel(self, finished: threading.Event) -> None:
        # waits on `finished`, so joining this thread at the end costs nothing (waiting on
        # `cancel` instead added up to 0.1 s to every run); checks `cancel` every 0.05 s
        while not finished.wait(0.05):
            if self.cancel.is_set():
                self._shutdown_all()
                return

    # -- running ---------------------------------------------------------------------------
    def run(self, on_progress: Callable[[Progress], None] | None = None) -> Result:
        """Download every file of the plan; returns when all are done, failed or cancelled.

        ``on_progress`` is called from worker threads (keep it quick; a UI should hand the
        event to its own thread). Writes the plan's manifest into the quant folder first.
        Raises :class:`NotEnoughSpace` before starting unless the remaining bytes fit or
        ``force`` was given.
        """
        self._on_progress = on_progress
        t0 = time.monotonic()
        plan = self.plan
        plan.refresh()
        if not self.force:
            plan.check_space()
        try:
            plan.target.mkdir(parents=True, exist_ok=True)
            plan.write_manifest()
        except OSError as exc:
            raise DownloadError(f"{plan.target}: cannot write there: {exc.strerror or exc}; "
                                "check models_dir in models.json") from None
        for pf in plan.files:
            pf.refresh()
            self._done[pf.name] = pf.have if pf.state != "present" else pf.size
        finished = threading.Event()
        watcher = threading.Thread(target=self._watch_cancel, args=(finished,), daemon=True,
                                   name="llmdeck-cancel-watch")
        watcher.start()
        try:
            for pf in plan.files:
                self._emit(pf, "present" if pf.state == "present" else "queued", self._done[pf.name])
            todo = [pf for pf in plan.files if pf.state != "present"]
            self.result.done += [pf.name for pf in plan.files if pf.state == "present"]
            if self.workers == 1 or len(todo) <= 1:
                for pf in todo:
                    self._one(pf)
            else:
                with ThreadPoolExecutor(self.workers, thread_name_prefix="llmdeck-dl") as ex:
                    list(ex.map(self._one, todo))
        finally:
            finished.set()
            watcher.join()
        self.result.cancelled = self.cancel.is_set() and any(
            pf.name not in self.result.done for pf in plan.files)
        self.result.bytes_fetched = self._fetched
        self.result.elapsed_s = time.monotonic() - t0
        for pf in plan.files:
            pf.refresh()
        return self.result

    def events(self) -> Iterator[Progress]:
        """Run in a background thread and yield its events; ``self.result`` is set at the end.
        What :meth:`run` would raise (e.g. :class:`NotEnoughSpace`) is raised after the last event."""
        q: queue.Queue = queue.Queue()
        end = object()

        failure: list[BaseException] = []

        def work() -> None:
            try:
                self.run(q.put)
            except BaseException as exc:  # NotEnoughSpace, a folder we cannot create: raised below
                failure.append(exc)
            finally:
                q.put(end)

        th = threading.Thread(target=work, daemon=True, name="llmdeck-download")
        th.start()
        try:
            while (ev := q.get()) is not end:
                yield ev
        finally:
            if th.is_alive():  # the consumer stopped early: stop the transfer too
                self.cancel.set()
            th.join()
        if failure:
            raise failure[0]

    def _one(self, pf: PlanFile) -> None:
        try:
            if self.cancel.is_set():
                raise Cancelled("cancelled")
            self._file(pf)
            with self._lock:
                self.result.done.append(pf.name)
        except Cancelled:
            self._emit(pf, "cancelled", self._done.get(pf.name, 0))
        except DownloadError as exc:
            with self._lock:
                self.result.failed[pf.name] = str(exc)
            self._emit(pf, "failed", self._done.get(pf.name, 0), message=str(exc))
        except OSError as exc:  # local disk problems
            msg = f"{pf.dest}: {exc.strerror or exc}"
            with self._lock:
                self.result.failed[pf.name] = msg
            self._emit(pf, "failed", self._done.get(pf.name, 0), message=msg)

    def _file(self, pf: PlanFile) -> None:
        if pf.dest.exists():
            size = pf.dest.stat().st_size
            if size == pf.size:
                self._emit(pf, "present", pf.size)
                return
            raise DownloadError(f"{pf.dest} exists with {size} bytes but {pf.path} at "
                                f"{self.plan.revision[:12]} has {pf.size}: move it away and retry")
        pf.dest.parent.mkdir(parents=True, exist_ok=True)
        try:  # never through a link planted at the .part name (its target would be overwritten)
            fd = safefiles.open_fd(pf.part, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        except safefiles.UnsafeFile as exc:
            raise DownloadError(str(exc)) from None
        with os.fdopen(fd, "a+b") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Busy(f"{pf.part}: another llmdeck process is downloading this file") from None
            hasher = _Hasher(pf)
            have = os.fstat(fh.fileno()).st_size
            if have > pf.size:  # cannot be a prefix of the file: start over
                fh.truncate(0)
                have = 0
            if have:
                self._hash_existing(fh, pf, hasher, have)
            self._transfer(fh, pf, hasher, have)
            fh.flush()
            os.fsync(fh.fileno())
            self._emit(pf, "verifying", pf.size)
            digest = hasher.h.hexdigest()
            if digest != hasher.expected:
                with contextlib.suppress(OSError):
                    os.unlink(pf.part)
                with self._lock:
                    self._done[pf.name] = 0
                raise VerifyError(f"{pf.name}: {hasher.kind} mismatch (expected {hasher.expected[:16]}…, "
                                  f"got {digest[:16]}…): the partial file was deleted; run the download "
                                  "again to fetch it afresh")
            os.replace(pf.part, pf.dest)
        _fsync_dir(pf.dest.parent)
        self._emit(pf, "done", pf.size)

    def _hash_existing(self, fh, pf: PlanFile, hasher: _Hasher, have: int) -> None:
        fh.seek(0)
        buf = bytearray(8 << 20)
        mv = memoryview(buf)
        done = 0
        self._emit(pf, "checking", 0)
        while done < have:
            if self.cancel.is_set():
                raise Cancelled("cancelled")
            n = fh.readinto(mv[:min(len(buf), have - done)])
            if not n:
                break
            hasher.h.update(mv[:n])
            done += n
            self._emit(pf, "checking", done, force=False)
        fh.seek(0, os.SEEK_END)

    def _transfer(self, fh, pf: PlanFile, hasher: _Hasher, have: int) -> None:
        plan = self.plan
        failures = 0
        self._resumed[pf.name] = have
        while have < pf.size:
            if self.cancel.is_set():
                raise Cancelled("cancelled")
            progressed = False
            try:
                loc = hub.file_location(plan.repo_id, pf.path, plan.revision, plan.endpoint, self.token)
                if loc.size is not None and loc.size != pf.size:
                    raise DownloadError(f"{pf.path}: the Hub now says {loc.size} bytes, the plan {pf.size}: "
                                        "plan again")
                headers = hub.auth_headers(loc.url, plan.endpoint, self.token)
                resp = fetch.get(loc.url, start=have, headers=headers, timeout=self.timeout,
                                 on_connect=self._track)
                try:
                    if have and resp.start != have:  # Range ignored (200) or another offset
                        fh.truncate(0)
                        fh.seek(0)
                        hasher.reset()
                        have = 0
                        if resp.start != 0:
                            raise fetch.FetchError(f"server resumed at {resp.start}, not {have}")
                    self._resumed[pf.name] = have
                    self._emit(pf, "downloading", have)
                    have, progressed, error = self._stream(resp, fh, pf, hasher, have)
                finally:
                    self._untrack(resp.sock())
                    resp.close()
                if self.cancel.is_set() and have < pf.size:
                    raise Cancelled("cancelled")
                if error is not None:
                    raise fetch.FetchError(f"{type(error).__name__}: {error}")
                if have < pf.size:
                    raise fetch.FetchError("the connection closed early")
            except (fetch.FetchError, OSError) as exc:
                if self.cancel.is_set():
                    raise Cancelled("cancelled") from None
                if isinstance(exc, OSError) and not isinstance(exc, (fetch.FetchError, ConnectionError,
                                                                     TimeoutError, socket.timeout)):
                    raise  # a local disk error: no point retrying
                failures = 0 if progressed else failures + 1
                if failures > self.retries:
                    raise DownloadError(f"{pf.name}: giving up after {self.retries} retries: "
                                        f"{_short(exc)}") from None
                delay = min(BACKOFF_MAX, self.backoff * (2 ** max(0, failures - 1)))
                self._emit(pf, "retrying", have, message=f"{_short(exc)}; retrying in {delay:.0f}s")
                if self.cancel.wait(delay):
                    raise Cancelled("cancelled") from None
            except fetch.HTTPStatus as exc:
                raise HubError(f"{pf.name}: the file host answered HTTP {exc.status}", exc.status) from None
            except HubError as exc:
                if exc.status is not None and exc.status < 500 and exc.status != 429:
                    raise  # 401, 403, 404: retrying will not help
                failures = 0 if progressed else failures + 1
                if failures > self.retries:
                    raise
                delay = min(BACKOFF_MAX, self.backoff * (2 ** max(0, failures - 1)))
                self._emit(pf, "retrying", have, message=f"{_short(exc)}; retrying in {delay:.0f}s")
                if self.cancel.wait(delay):
                    raise Cancelled("cancelled") from None

    def _stream(self, resp: fetch.Response, fh, pf: PlanFile, hasher: _Hasher,
                have: int) -> tuple[int, bool, BaseException | None]:
        """Copy the body to the file. Returns (bytes now on disk, whether any arrived, the
        transfer error that stopped it or None). Disk errors are raised."""
        writer = _Writer(fh, hasher)
        progressed = False
        error: BaseException | None = None
        try:
            while have < pf.size:
                buf = writer.buffer()
                try:
                    n = resp.readinto(memoryview(buf)[:min(BUF, pf.size - have)])
                except Exception as exc:  # OSError, http.client.HTTPException, ValueError on a shut socket
                    writer.give_back(buf)
                    error = exc
                    break
                if not n:
                    writer.give_back(buf)
                    break
                writer.submit(buf, n)
                have += n
                progressed = True
                self._count(pf, n)
                self._emit(pf, "downloading", have, force=False)
                if self.cancel.is_set():
                    break
        finally:
            writer.close()  # every byte counted in `have` is on disk (or a disk error is raised)
        return have, progressed, error


def _short(exc: BaseException) -> str:
    s = str(exc) or type(exc).__name__
    return s.splitlines()[0][:200]


def _fsync_dir(d) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def download(plan: Plan, on_progress: Callable[[Progress], None] | None = None, *,
             cancel: threading.Event | None = None, **kw) -> Result:
    """``Download(plan, cancel=cancel, **kw).run(on_progress)``."""
    return Download(plan, cancel=cancel, **kw).run(on_progress)
