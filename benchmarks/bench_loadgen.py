"""Can the load generator outrun the server? 512 concurrent streams against a server that streams
as fast as it can.

Targets (issue 8): the generator sustains >= 20,000 output tokens/s aggregate on this 2-core
machine, and the TTFT it measures stays within 5 ms of the server-side value.

The server (``--serve PORT``, a child process) speaks llama-server's streaming protocol: chunked
transfer encoding, one ``data: {chat.completion.chunk}`` event per token in llama.cpp's shape, a
role chunk, a finish chunk, a usage chunk and ``data: [DONE]``. It does no inference: each
decode step writes one token to every active stream, back to back, so the client's reading is
the limit (run 1). Run 2 paces the decode steps to 25,000 tok/s, like a fast GPU server with a
512-request batch, to show the TTFT figures when the CPUs are not saturated by the test itself.

Server-side TTFT runs from the kernel's receive time of the request (``SO_TIMESTAMPNS`` on the
server's socket: it includes any wait for the server's own event loop) to the moment the first
content chunk was written. Both processes read CLOCK_MONOTONIC, which is system-wide on Linux;
requests are paired by response id, and the delta is split into its two legs (request written
-> at the server's socket; first token sent -> noticed by the generator). The CPU used by this
process, the server and everything else during each run is printed: on a machine shared with
other work, the tail of the delta follows how busy the CPUs are.

Baseline, measured in the same run: the same workload read with httpx (``aiter_lines`` +
``json.loads`` per event, on the same event loop), as a typical Python client does.

Run: ``.venv/bin/python benchmarks/bench_loadgen.py`` (about 35 s). ``--requests``,
``--concurrency``, ``--tokens`` and ``--paced`` change the workload.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

monotonic = time.monotonic
YIELD_EVERY = 64  # writes between yields to the event loop (keeps new requests served quickly)


# --- the fast server ---------------------------------------------------------------------------

def _frame(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _event(obj: dict) -> bytes:
    return _frame(b"data: " + json.dumps(obj, separators=(",", ":"), sort_keys=True).encode() + b"\n\n")


class _Stream:
    __slots__ = ("conn", "token", "left", "tail")

    def __init__(self, conn, token: bytes, left: int, tail: bytes):
        self.conn, self.token, self.left, self.tail = conn, token, left, tail


class FastServer:
    """The streams and their decode steps; ``stats`` keeps each request's server-side times."""

    def __init__(self, pace: float = 0.0) -> None:
        self.pace = pace  # aggregate tokens/s to hold to; 0 = as fast as it can
        self.active: list[_Stream] = []
        self.wake = asyncio.Event()  # a stream started
        self.writable = asyncio.Event()  # a full socket can take data again
        self.seq = 0
        # id -> (request arrived (kernel stamp), request read, first token written, tokens)
        self.stats: dict[str, tuple[float, float, float, int]] = {}
        self.tokens_sent = 0

    def start_stream(self, conn: "_RawConn", body: dict, t_arrived: float, t_read: float) -> None:
        self.seq += 1
        rid = f"chatcmpl-{self.seq:032d}"
        n = max(1, int(body.get("max_tokens") or 16))
        base = {"created": int(time.time()), "id": rid, "model": body.get("model", "fast"),
                "object": "chat.completion.chunk", "system_fingerprint": "b0-fast"}

        def chunk(delta: dict, finish=None) -> dict:
            return dict(base, choices=[{"delta": delta, "finish_reason": finish, "index": 0}])

        token = _event(chunk({"content": " tok"}))
        tail = (_event(chunk({}, "length")) + _event(dict(base, choices=[], usage={
            "completion_tokens": n, "prompt_tokens": 8, "total_tokens": n + 8}))
            + _frame(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
                b"Keep-Alive: timeout=5, max=100000\r\n\r\n")
        first = _event(chunk({"content": None, "role": "assistant"})) + _event(chunk({"content": "Hello"}))
        conn.write(head + first)
        t_first = monotonic()
        self.stats[rid] = (t_arrived, t_read, t_first, n)
        self.tokens_sent += 1
        if n == 1:
            conn.write(tail)
        else:
            self.active.append(_Stream(conn, token, n - 1, tail))
            self.wake.set()

    async def engine(self) -> None:
        """Decode steps: one token to every stream whose socket can take it, back to back (or,
        paced, each step as long as its tokens take at the pace, like a GPU's decode step)."""
        while True:
            if not self.active:
                self.wake.clear()
                await self.wake.wait()
            step_start = monotonic()
            keep = []
            k = 0
            for st in self.active:
                c = st.conn
                if c.closed:
                    continue
                if c.out:  # the socket is full
                    keep.append(st)
                    continue
                st.left -= 1
                self.tokens_sent += 1
                if st.left:
                    c.write(st.token)
                    keep.append(st)
                else:
                    c.write(st.token + st.tail)
                k += 1
                if k % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            self.active = keep  # streams started during the step were iterated too
            if k == 0 and keep:  # every socket is full: wait for one to drain, do not spin
                self.writable.clear()
                await self.writable.wait()
            elif self.pace:
                await asyncio.sleep(max(0.0, step_start + k / self.pace - monotonic()))
            else:
                await asyncio.sleep(0)


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; the kernel stamps each packet it receives


class _RawConn:
    """One accepted connection, read with ``recvmsg`` so each request carries the kernel's
    receive time: server-side TTFT starts when the request reached the server, not when this
    process got around to reading it."""

    def __init__(self, server: FastServer, sock: socket.socket):
        self.server, self.sock, self.fd = server, sock, sock.fileno()
        self.buf = b""
        self.out: list[bytes] = []
        self.closed = False
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.fd, self.on_readable)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.fd)
            if self.out:
                self.loop.remove_writer(self.fd)
            self.sock.close()

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        if self.out:
            self.out.append(data)
            return
        try:
            n = self.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            self.close()
            return
        if n < len(data):
            self.out.append(data[n:])
            self.loop.add_writer(self.fd, self.on_writable)

    def on_writable(self) -> None:
        data = b"".join(self.out)
        try:
            n = self.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            self.close()
            return
        if n < len(data):
            self.out = [data[n:]]
            return
        self.out = []
        self.loop.remove_writer(self.fd)
        self.server.writable.set()

    def on_readable(self) -> None:
        try:
            data, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(16))
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        t_read = monotonic()
        if not data:
            self.close()
            return
        t_arrived = t_read
        for level, kind, raw in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
                sec, ns = struct.unpack("qq", raw[:16])
                t_arrived = min(t_read, sec + ns / 1e9 - (time.time() - monotonic()))
        self.buf += data
        while not self.closed:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            head = self.buf[:i].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v)
            if len(self.buf) < i + 4 + length:
                return
            body = self.buf[i + 4:i + 4 + length]
            self.buf = self.buf[i + 4 + length:]
            method, path = head.split(" ", 2)[:2]
            if method == "GET" and path == "/stats":
                payload = json.dumps({"stats": self.server.stats, "tokens_sent": self.server.tokens_sent}).encode()
                self.server.stats = {}
                self.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                           b"Connection: close\r\n\r\n%s" % (len(payload), payload))
                return
            if method == "GET":
                self.write(b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}")
                continue
            self.server.start_stream(self, json.loads(body), t_arrived, t_read)


async def serve(port: int, pace: float = 0.0) -> None:
    loop = asyncio.get_running_loop()
    fs = FastServer(pace)
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # on the listener, so requests that arrive before accept() are stamped too
    lsock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(4096)
    lsock.setblocking(False)

    def accept() -> None:
        for _ in range(256):
            try:
                s, _ = lsock.accept()
            except BlockingIOError:
                return
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            _RawConn(fs, s)

    loop.add_reader(lsock.fileno(), accept)
    engine = asyncio.create_task(fs.engine())
    print("ready", flush=True)
    await engine


# --- the measurement ------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stats(port: int) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/stats", timeout=30) as r:
        return json.loads(r.read())


async def httpx_baseline(base_url: str, prompts, n: int, conc: int, max_tokens: int | None) -> dict:
    import httpx

    from tui.core.bench.runner import BenchOptions, Target, request_body

    target, opts = Target(base_url, "fast"), BenchOptions(max_tokens=max_tokens)
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    tokens = 0
    ttfts = []
    async with httpx.AsyncClient(limits=limits, timeout=120, trust_env=False) as client:
        it = iter(range(n))

        async def worker():
            nonlocal tokens
            for i in it:
                body = request_body(target, prompts[i % len(prompts)], opts)
                t0 = monotonic()
                first = None
                async with client.stream("POST", base_url + "/chat/completions", json=body) as r:
                    async for line in r.aiter_lines():
                        if not line.startswith("data: "):
                            continue
                        data = line[6:]
                        if data == "[DONE]":
                            break
                        obj = json.loads(data)
                        ch = obj.get("choices") or []
                        if ch and (ch[0].get("delta") or {}).get("content"):
                            tokens += 1
                            if first is None:
                                first = monotonic()
                                ttfts.append(first - t0)

        t0 = monotonic()
        await asyncio.gather(*(worker() for _ in range(conc)))
        wall = monotonic() - t0
    return {"tokens": tokens, "wall_s": wall, "tok_s": tokens / wall}


def _pct(v: list[float], q: float) -> float:
    from tui.core.bench.stats import percentile

    return percentile(sorted(v), q)


class _Server:
    """The fast server in a child process (uvloop when installed: the server must be fast too)."""

    def __init__(self, pace: float = 0.0):
        self.port = _free_port()
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(self.port), "--pace", str(pace)],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True)
        if self.proc.stdout.readline().strip() != b"ready":
            raise SystemExit("the fast server did not start")
        self.base = f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def _ttft_rows(res, stats: dict) -> dict[str, list[float]]:
    """Per request, paired by response id; CLOCK_MONOTONIC is system-wide, so the generator's and
    the server's timestamps compare directly."""
    rows = {k: [] for k in ("gen", "srv", "srv_read", "delta", "transit", "resp")}
    for r in res.records:
        s = stats.get(r.response_id or "")
        if s is None or r.ttft is None:
            continue
        arrived, read, first, _ = s
        rows["gen"].append(r.ttft * 1000)
        rows["srv"].append((first - arrived) * 1000)
        rows["srv_read"].append((first - read) * 1000)
        rows["delta"].append((r.ttft - (first - arrived)) * 1000)
        rows["transit"].append((arrived - r.start) * 1000)  # request written -> at the server's socket
        rows["resp"].append((r.first - first) * 1000)  # first token written -> the generator has it
    return rows


def _run_phase(bench, srv: _Server, prompts, requests: int, conc: int, tokens: int | None):
    target = bench.Target(srv.base, "fast")
    wl = bench.Workload("concurrency", conc)
    # warm-up: code paths and the server's first connections
    bench.run_sync(bench.run_workload(target, wl, prompts[:conc], bench.BenchOptions(requests=conc, max_tokens=8)))
    _stats(srv.port)
    cpu = _CpuShare(srv.proc.pid)
    res = bench.run_sync(bench.run_workload(target, wl, prompts, bench.BenchOptions(requests=requests,
                                                                                    max_tokens=tokens)))
    share = cpu.stop()
    return res, share, _ttft_rows(res, _stats(srv.port)["stats"])


def _print_phase(title: str, res, share: dict, rows: dict) -> None:
    c = res.client
    print(title)
    print(f"  load generator: {res.output_tokens:,} tokens in {res.duration_s:.2f} s = "
          f"{res.output_tok_s:,.0f} tok/s aggregate, {res.req_s:,.0f} req/s, {res.errors} errors")
    print(f"  its own cost: CPU {c.cpu_pct:.0f}% of a core, event-loop lag p50 {c.loop_lag_ms['p50']} ms / "
          f"p99 {c.loop_lag_ms['p99']} ms, {c.connections} connections, peak {c.peak_in_flight} in flight, "
          f"max RSS {c.max_rss_mb:.0f} MB")
    print(f"  CPU during the run (cores busy): load generator {share['client']:.2f}, server {share['server']:.2f}, "
          f"other processes {share['other']:.2f}, of {os.cpu_count()}")
    n = len(rows["delta"])
    print(f"  TTFT over {n} requests paired by response id (ms)          p50      p90      p99      max")

    def line(label, key):
        v = rows[key]
        print(f"    {label:<56}{_pct(v, 50):8.2f} {_pct(v, 90):8.2f} {_pct(v, 99):8.2f} {max(v):8.2f}")

    line("measured by the load generator", "gen")
    line("server-side (request at the server -> first token sent)", "srv")
    line("delta (generator - server-side)", "delta")
    line("  of which: request written -> at the server's socket", "transit")
    line("  of which: first token sent -> noticed by the generator", "resp")
    line("server-side, from when the server read the request", "srv_read")
    within = sum(1 for d in rows["delta"] if d <= 5.0) / max(1, n)
    print(f"    requests whose TTFT is within 5 ms of the server-side value: {within:.1%}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    ap.add_argument("--pace", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--requests", type=int, default=3072)
    ap.add_argument("--concurrency", type=int, default=512)
    ap.add_argument("--tokens", type=int, default=None,
                    help="cap on each reply (default: the synthetic set's lengths, mean ~200)")
    ap.add_argument("--paced", type=float, default=25_000,
                    help="second run: the server holds this many tokens/s (0 to skip)")
    ap.add_argument("--baseline-requests", type=int, default=1024)
    args = ap.parse_args()
    from tui.core.bench.runner import run_sync

    if args.serve:
        run_sync(serve(args.serve, args.pace))
        return 0

    from tui.core import bench

    print(f"llmdeck bench_loadgen: concurrency {args.concurrency}, {os.cpu_count()} cores, "
          f"python {sys.version.split()[0]}, {'uvloop' if _has_uvloop() else 'asyncio'} event loop")
    prompts = bench.synthetic(args.requests, seed=0)
    srv = _Server()
    try:
        res, share, rows = _run_phase(bench, srv, prompts, args.requests, args.concurrency, args.tokens)
        base_res = bench.run_sync(httpx_baseline(srv.base, prompts, args.baseline_requests, args.concurrency,
                                                 args.tokens))
    finally:
        srv.stop()
    print()
    _print_phase(f"1. server streaming as fast as it can, {args.requests} requests", res, share, rows)
    print(f"  baseline, same server, workload and event loop: httpx (aiter_lines + json.loads per event) "
          f"{base_res['tokens']:,} tokens in {base_res['wall_s']:.2f} s = {base_res['tok_s']:,.0f} tok/s; "
          f"ratio llmdeck / httpx {res.output_tok_s / base_res['tok_s']:.1f}x")

    paced = None
    if args.paced:
        n2 = max(args.concurrency, args.requests // 2)
        srv = _Server(args.paced)
        try:
            paced = _run_phase(bench, srv, prompts, n2, args.concurrency, args.tokens)
        finally:
            srv.stop()
        print()
        _print_phase(f"2. server pacing its decode steps to {args.paced:,.0f} tok/s (a fast GPU server), "
                     f"{n2} requests", *paced)

    print()
    ok_tok = res.output_tok_s >= 20_000
    d = rows["delta"]
    print(f"target >= 20,000 tok/s aggregate (run 1): {'PASS' if ok_tok else 'FAIL'} ({res.output_tok_s:,.0f} tok/s)")
    ok_ttft = _pct(d, 99) <= 5.0
    print(f"target TTFT within 5 ms of the server-side value, p99 of the per-request delta (run 1): "
          f"{'PASS' if ok_ttft else 'FAIL'} ({_pct(d, 99):.2f} ms; p50 {_pct(d, 50):.2f}, p90 {_pct(d, 90):.2f})")
    ok_paced = False
    if paced:
        d2 = paced[2]["delta"]
        ok_paced = paced[0].output_tok_s >= 20_000 and _pct(d2, 99) <= 5.0
        print(f"  the same at {paced[0].output_tok_s:,.0f} tok/s (run 2): "
              f"{'PASS' if _pct(d2, 99) <= 5.0 else 'FAIL'} ({_pct(d2, 99):.2f} ms; p50 {_pct(d2, 50):.2f}, "
              f"p90 {_pct(d2, 90):.2f})")
    # The target is both at once: >= 20,000 tok/s sustained AND TTFT within 5 ms. Run 1
    # (server flat out, both cores saturated by server + generator) shows the headroom; run 2 holds
    # a rate above 20,000 tok/s and is where both must hold.
    both = (ok_tok and ok_ttft) or ok_paced
    print(f"target: >= 20,000 tok/s with TTFT p99 within 5 ms of the server-side value, in one run: "
          f"{'PASS' if both else 'FAIL'}" + ("" if ok_tok and ok_ttft else " (run 2)" if ok_paced else ""))
    return 0 if both else 1


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


class _CpuShare:
    """Cores kept busy during the run by this process, the server, and everything else."""

    def __init__(self, server_pid: int):
        import psutil

        self.me, self.srv = psutil.Process(), psutil.Process(server_pid)
        self.t0 = time.monotonic()
        self.sys0 = self._busy(psutil.cpu_times())
        self.me0, self.srv0 = self._proc(self.me), self._proc(self.srv)

    @staticmethod
    def _busy(t) -> float:
        return t.user + t.system + getattr(t, "nice", 0) + getattr(t, "irq", 0) + getattr(t, "softirq", 0)

    @staticmethod
    def _proc(p) -> float:
        t = p.cpu_times()
        return t.user + t.system

    def stop(self) -> dict:
        import psutil

        wall = time.monotonic() - self.t0
        total = self._busy(psutil.cpu_times()) - self.sys0
        me, srv = self._proc(self.me) - self.me0, self._proc(self.srv) - self.srv0
        return {"client": me / wall, "server": srv / wall, "other": max(0.0, total - me - srv) / wall}


if __name__ == "__main__":
    sys.exit(main())
