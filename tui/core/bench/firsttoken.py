"""The first-token watcher: a thread that stamps the moment each stream's first token arrived.

With hundreds of streams, the load generator's event loop may be partway through a long pass
over busy sockets when a first token lands; this thread sleeps in ``epoll`` on the sockets still
waiting for their first token and notes when one arrives (the kernel's receive time), so the
client's own load stays out of TTFT. One job: it only peeks and stamps; :mod:`.sse` decides
what the first token is and whether the stamp is used.
"""

from __future__ import annotations

import re
import select
import socket
import struct
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tui.core.bench.sse import Connection

monotonic = time.monotonic

# the first text delta of a stream, as it appears in the raw bytes (JSON with or without spaces)
FIRST_TEXT = re.compile(rb'"delta":\s*\{[^{}]*"(?:content|reasoning_content|reasoning)":\s*"[^"]'
                        rb'|"delta":\s*\{[^{}]*"tool_calls":\s*\[')


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; SCM_TIMESTAMPNS has the same value
_TIMESPEC = struct.Struct("qq")


def _request_short_slice(slice_ns: int = 100_000) -> bool:
    """Ask the Linux scheduler (EEVDF, 6.6+) for a 0.1 ms slice for the calling thread, so that
    on wake-up it preempts busy threads at once instead of waiting for their slice to end (a
    normal-priority request, no privilege needed). Best effort: False where unsupported."""
    import ctypes
    import platform
    import struct

    nr = {"x86_64": 314, "aarch64": 274}.get(platform.machine())
    if nr is None or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        # struct sched_attr (VER1, 56 bytes): SCHED_OTHER with sched_runtime = the slice
        attr = ctypes.create_string_buffer(struct.pack("IIQiIQQQII", 56, 0, 0, 0, 0, slice_ns, 0, 0, 0, 0))
        return libc.syscall(nr, 0, attr, 0) == 0
    except (OSError, AttributeError):
        return False


class FirstTokenWatcher:
    """A thread that sleeps in ``epoll`` on the sockets still waiting for their first token and
    notes when one arrives (``Connection.seen_at``).

    With hundreds of streams, the event loop may be partway through a long pass over busy
    sockets when a first token lands; stamping it here keeps the client's own load out of TTFT.
    The thread only peeks (``MSG_PEEK``) at a dup of the socket and never consumes data; the event
    loop still parses every byte and decides what the first token is — the stamp is used only
    when it lies between the send and the loop's own read. The stamp is the kernel's receive
    time of the data (``SO_TIMESTAMPNS``, read with the peek), so neither the GIL nor a busy CPU
    delays it: on 2 saturated cores this thread can wake 10 ms after the bytes landed. Where the
    kernel gives no timestamp, the time of the wake-up is used; to keep that close, the
    interpreter's thread switch interval is lowered to 0.5 ms while the watcher runs and the
    thread asks the scheduler for a short slice. Linux only (edge-triggered epoll); elsewhere the
    loop's read time is used.
    """

    SWITCH_INTERVAL_S = 0.0005

    def __init__(self) -> None:
        import threading

        self.ep = select.epoll()
        self.watch: dict[int, Connection] = {}
        self.running = True
        self.saved_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self.saved_interval, self.SWITCH_INTERVAL_S))
        self.thread = threading.Thread(target=self._run, name="llmdeck-bench-ttft", daemon=True)
        self.thread.start()

    @classmethod
    def start(cls) -> "FirstTokenWatcher | None":
        if not hasattr(select, "epoll"):
            return None
        return cls()

    def add(self, conn: "Connection") -> None:
        peek = conn.peek
        if peek is None:
            return
        fd = peek.fileno()
        if self.watch.get(fd) is conn:
            return
        # the fd is remembered: the event loop may close conn.peek while this thread reads it
        conn.peek_fd = fd
        try:  # the kernel stamps each packet it receives; recvmsg below reads the stamp
            peek.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            pass
        self.watch[fd] = conn
        try:
            self.ep.register(fd, select.EPOLLIN | select.EPOLLET | select.EPOLLRDHUP)
        except OSError:
            self.watch.pop(fd, None)

    def remove(self, conn: "Connection") -> None:
        fd = getattr(conn, "peek_fd", None)
        if fd is None:
            return
        if self.watch.get(fd) is conn and self.watch.pop(fd, None) is conn:
            try:
                self.ep.unregister(fd)
            except (OSError, ValueError):
                pass

    def _run(self) -> None:
        _request_short_slice()
        flags = socket.MSG_PEEK | socket.MSG_DONTWAIT
        anc_size = socket.CMSG_SPACE(16)
        while self.running:
            try:
                events = self.ep.poll(0.05)
            except (OSError, ValueError):
                return
            if not events:
                continue
            now = monotonic()
            offset = time.time() - now  # kernel stamps are wall-clock: this maps them to monotonic
            for fd, _ in events:
                conn = self.watch.get(fd)
                peek = conn.peek if conn is not None else None
                if peek is None:
                    continue
                try:
                    data, anc, _, _ = peek.recvmsg(65536, anc_size, flags)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    self.remove(conn)
                    continue
                if not data:
                    self.remove(conn)
                elif FIRST_TEXT.search(data):
                    # the stamp of the newest packet peeked: the one that brought the first token
                    # unless more arrived since (then later, never earlier, than the truth)
                    stamp = now
                    for level, kind, raw in anc:
                        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
                            sec, ns = _TIMESPEC.unpack_from(raw)
                            stamp = min(now, sec + ns / 1e9 - offset)
                    conn.seen_at = stamp
                    self.remove(conn)

    def stop(self) -> None:
        self.running = False
        self.thread.join(1.0)
        self.ep.close()
        sys.setswitchinterval(self.saved_interval)
