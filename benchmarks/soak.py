"""Soak test of the whole: three actors for N seconds on three real llama-servers (the demo model).

    python benchmarks/soak.py [--seconds 600] [--seed 1] [--workdir DIR] [--json]

Actors, each in its own thread, all against one fresh registry of three SmolLM2 models (the
third with ``restart: "on-failure"``):

* **cli**: ``llmdeck start M --wait`` / ``stop M`` / ``restart M --wait`` / ``status`` through the
  real CLI (a new process each), and now and then two ``start M --wait`` at the same moment;
* **router**: ``llmdeck serve`` in its own process, sent short chat requests for random models;
* **faults**: ``kill -9`` of a random server, of a random watcher, of a running CLI process,
  and stale pid files planted for stopped models (a dead PID; the PID of a live decoy process
  that llmdeck did not start, in the seed's two-line format and as a forged full record).

A checker samples every 0.25 s and at the end. Invariants:

1. never two servers for one model (counted from the process table: our binary, our working
   folder, the model's ``--port``);
2. every live server is visible in ``status`` with its PID, within 2 s;
3. ``status`` converges within 2 s: no model is reported running without a live server;
4. no process is signalled that llmdeck did not start (the decoys stay alive);
5. after ``stop --all`` nothing of ours runs (servers and watchers);
6. every run's log starts with its banner, and every server seen ready wrote its
   "listening on" line into a kept log (``log_runs_kept`` is set high for this).

It prints operations done, faults injected and invariant violations, and exits 1 on any
violation. ``tests/test_soak.py`` runs a 60-second version in CI; the README has a 10-minute run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from tui.core import logfiles, provision, registry, runfiles, supervisor  # noqa: E402

MODELS = ("soak-a", "soak-b", "soak-c")
CONVERGE_S = 2.0
RUNNING = ("starting", "loading", "ready", "unhealthy", "stopping")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Soak:
    def __init__(self, work: Path, seconds: float, seed: int) -> None:
        self.work = work
        self.seconds = seconds
        self.rng = random.Random(seed)
        self.binary = provision.build_llama_server()
        self.gguf = provision.demo_model()
        self.ports = {m: free_port() for m in MODELS}
        models = {}
        for m in MODELS:
            models[m] = {"model_path": str(self.gguf), "default_port": self.ports[m], "alias": m,
                         "params": {"ctx_size": 256, "threads": 1, "parallel": 1}}
        models["soak-c"]["restart"] = "on-failure"
        self.reg_path = work / "models.json"
        self.reg_path.write_text(json.dumps({"settings": {"llama_server": str(self.binary), "stop_grace_s": 5,
                                                          "log_runs_kept": 10_000},
                                             "models": models}, indent=2))
        self.reg = registry.load(self.reg_path)
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.ops: Counter = Counter()
        self.faults: Counter = Counter()
        self.requests: Counter = Counter()
        self.violations: list[str] = []
        self.cli_procs: list[subprocess.Popen] = []
        self.busy: set[str] = set()  # models the cli actor is working on now
        self.decoys: list[subprocess.Popen] = []
        self.ready_pids: dict[str, set[int]] = {m: set() for m in MODELS}
        self.bad_since: dict[tuple[str, str], float] = {}
        self.router: subprocess.Popen | None = None
        self.router_port = free_port()
        # the CLI, the router and the watchers run this tree's code
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        self.started_at = time.monotonic()

    # -- helpers ---------------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 120) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-m", "tui", "--registry", str(self.reg_path), *args],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             cwd=str(self.work), env=self.env)
        with self.lock:
            self.cli_procs.append(p)
        return p

    def finish(self, p: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            self.violation("cli", f"{' '.join(p.args[3:])} did not finish in {timeout:.0f} s")
        with self.lock:
            if p in self.cli_procs:
                self.cli_procs.remove(p)
        return p.returncode, (out or b"").decode(errors="replace")

    def violation(self, kind: str, text: str) -> None:
        line = f"[{time.monotonic() - self.started_at:7.1f}s] {kind}: {text}"
        with self.lock:
            self.violations.append(line)
        print("VIOLATION " + line, flush=True)

    def our_procs(self) -> tuple[dict[str, list[psutil.Process]], list[psutil.Process]]:
        """Servers of ours per model (our binary, cwd in our folder) and our watchers."""
        servers: dict[str, list[psutil.Process]] = {m: [] for m in MODELS}
        watchers: list[psutil.Process] = []
        by_port = {str(p): m for m, p in self.ports.items()}
        work = str(self.work)
        for proc in psutil.process_iter(["pid", "cmdline", "status"]):
            try:
                cmd = proc.info["cmdline"] or []
                if proc.info["status"] == psutil.STATUS_ZOMBIE or not cmd:
                    continue
                if cmd[0] == str(self.binary) and proc.cwd() == work and "--port" in cmd:
                    port = cmd[cmd.index("--port") + 1]
                    if port in by_port:
                        servers[by_port[port]].append(proc)
                elif "tui.core.watcher" in cmd and any(a.startswith(work) for a in cmd):
                    watchers.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError, IndexError):
                continue
        return servers, watchers

    # -- actors ----------------------------------------------------------------------------

    def cli_actor(self) -> None:
        rng = random.Random(self.rng.random())
        while not self.stop_event.is_set():
            m = rng.choice(MODELS)
            op = rng.choices(["start", "stop", "restart", "double-start", "status"], [25, 25, 15, 25, 10])[0]
            with self.lock:
                self.busy.add(m)
            try:
                if op == "start":
                    self.finish(self.cli("start", m, "--wait", "--timeout", "60"))
                elif op == "stop":
                    self.finish(self.cli("stop", m))
                elif op == "restart":
                    self.finish(self.cli("restart", m, "--wait"))
                elif op == "double-start":
                    a = self.cli("start", m, "--wait", "--timeout", "60")
                    b = self.cli("start", m, "--wait", "--timeout", "60")
                    self.finish(a)
                    self.finish(b)
                else:
                    rc, out = self.finish(self.cli("status", "--json"))
                    if rc == 0:
                        try:
                            json.loads(out)
                        except ValueError:
                            self.violation("status", f"status --json is not JSON: {out[:200]!r}")
                    elif rc != -signal.SIGKILL:
                        self.violation("status", f"status exited {rc}: {out[-300:]!r}")
                self.ops[op] += 1
            finally:
                with self.lock:
                    self.busy.discard(m)
            self.stop_event.wait(rng.uniform(0.1, 1.0))

    def router_actor(self) -> None:
        rng = random.Random(self.rng.random())
        self.router = subprocess.Popen([sys.executable, "-m", "tui", "--registry", str(self.reg_path), "serve",
                                        "--port", str(self.router_port)], stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(self.work),
                                       env=self.env)
        url = f"http://127.0.0.1:{self.router_port}/v1/chat/completions"
        while not self.stop_event.is_set():
            m = rng.choice(MODELS)
            body = json.dumps({"model": m, "max_tokens": 4, "stream": rng.random() < 0.5,
                               "messages": [{"role": "user", "content": "Say hi."}]}).encode()
            req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    r.read()
                    self.requests[r.status] += 1
            except urllib.error.HTTPError as e:
                self.requests[e.code] += 1
            except Exception as e:  # noqa: BLE001 — a refused connection while the router starts
                self.requests[type(e).__name__] += 1
            self.stop_event.wait(rng.uniform(0.05, 0.5))

    def fault_actor(self) -> None:
        rng = random.Random(self.rng.random())
        while not self.stop_event.wait(rng.uniform(1.0, 3.0)):
            kind = rng.choice(["kill-server", "kill-watcher", "kill-cli", "plant-pid"])
            servers, watchers = self.our_procs()
            if kind == "kill-server":
                live = [p for ps in servers.values() for p in ps]
                if live:
                    self._kill(rng.choice(live), kind)
            elif kind == "kill-watcher":
                if watchers:
                    self._kill(rng.choice(watchers), kind)
            elif kind == "kill-cli":
                with self.lock:
                    procs = [p for p in self.cli_procs if p.poll() is None]
                if procs:
                    p = rng.choice(procs)
                    try:
                        p.send_signal(signal.SIGKILL)
                        self.faults[kind] += 1
                    except ProcessLookupError:
                        pass
            else:
                self._plant(rng, servers)

    def _kill(self, proc: psutil.Process, kind: str) -> None:
        try:
            proc.send_signal(signal.SIGKILL)
            self.faults[kind] += 1
        except psutil.NoSuchProcess:
            pass

    def _plant(self, rng: random.Random, servers: dict[str, list[psutil.Process]]) -> None:
        """A stale pid file for a stopped model that nobody is starting now: a dead PID, or a live
        decoy (seed format, or a forged full record with the decoy's real start time)."""
        with self.lock:
            idle = [m for m in MODELS if m not in self.busy and not servers[m]]
            if not idle:
                return
            m = rng.choice(idle)
            st = supervisor.state_of(self.reg, m, probe=False)
            if st.running or st.restarting_in_s:
                return
            pidfile = runfiles.RunDir(self.reg.run_dir, m).pid
            style = rng.choice(["dead", "seed", "forged"])
            if style == "dead":
                p = subprocess.Popen(["true"])
                p.wait()
                text = f"{p.pid}\n{self.ports[m]}\n"
            else:
                decoy = subprocess.Popen(["sleep", "100000"], start_new_session=True)
                self.decoys.append(decoy)
                if style == "seed":
                    text = f"{decoy.pid}\n{self.ports[m]}\n"
                else:
                    since, boot = runfiles.process_start(decoy.pid)
                    rec = runfiles.PidRecord(pid=decoy.pid, port=self.ports[m], create_time=None,
                                             start_since_boot=since, boot_id=boot, cmdline=["sleep", "100000"],
                                             watcher_pid=None, started_at=time.time(), log=None, quant=None,
                                             engine="llama-server", base_url=None, health_url=None)
                    text = rec.dumps()
            self.reg.run_dir.mkdir(parents=True, exist_ok=True)
            try:
                runfiles.write_atomic(pidfile, text)
            except OSError:
                return
            self.faults[f"plant-pid-{style}"] += 1

    # -- the checker -----------------------------------------------------------------------

    def persistent(self, key: tuple[str, str], bad: bool, text: str) -> None:
        """A condition that must hold within CONVERGE_S: a violation once it has been false longer."""
        now = time.monotonic()
        if not bad:
            self.bad_since.pop(key, None)
            return
        since = self.bad_since.setdefault(key, now)
        if since > 0 and now - since > CONVERGE_S:
            self.violation(key[0], text)
            self.bad_since[key] = -1.0  # reported once per episode

    def check(self) -> None:
        servers, _ = self.our_procs()
        try:
            states = {s.name: s for s in supervisor.status(self.reg, probe=True)}
        except Exception as exc:  # noqa: BLE001
            self.violation("status", f"status raised {type(exc).__name__}: {exc}")
            return
        for m in MODELS:
            live = servers[m]
            if len(live) > 1:
                self.violation("two-servers", f"{m} has {len(live)} servers: pids {[p.pid for p in live]}")
            st = states.get(m)
            live_pids = {p.pid for p in live}
            if st is not None and st.state == "ready" and st.pid:
                self.ready_pids[m].add(st.pid)
            visible = st is not None and st.running and st.pid in live_pids
            self.persistent(("invisible-server", m), bool(live) and not visible,
                            f"{m}: server pid {sorted(live_pids)} runs but status says "
                            f"{st.state if st else '-'} pid {st.pid if st else '-'}")
            self.persistent(("state", m), not live and st is not None and st.running,
                            f"{m}: status says {st.state if st else '-'} (pid {st.pid if st else '-'}) "
                            "but no server runs")
        for d in self.decoys:
            if d.poll() is not None:
                self.violation("signalled-stranger", f"decoy pid {d.pid} (not started by llmdeck) ended: "
                                                     f"{d.returncode}")
                self.decoys.remove(d)

    def checker(self) -> None:
        while not self.stop_event.wait(0.25):
            self.check()

    def check_logs(self) -> None:
        for m in MODELS:
            logs = sorted(self.reg.logs_dir.glob(f"{m}.log*"))
            listening = 0
            for f in logs:
                text = f.read_text(errors="replace")
                if text and not text.startswith(logfiles.BANNER_PREFIX):
                    self.violation("log", f"{f.name} does not start with a banner: {text[:80]!r}")
                listening += text.count(" listening on http")
            if listening < len(self.ready_pids[m]):
                self.violation("log", f"{m}: {len(self.ready_pids[m])} servers were seen ready but the kept logs "
                                      f"hold {listening} 'listening on' lines")

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> dict:
        threads = [threading.Thread(target=f, name=f.__name__, daemon=True)
                   for f in (self.cli_actor, self.router_actor, self.fault_actor, self.checker)]
        for t in threads:
            t.start()
        try:
            while time.monotonic() - self.started_at < self.seconds:
                time.sleep(0.5)
                done = sum(self.ops.values())
                elapsed = time.monotonic() - self.started_at
                if int(elapsed) % 30 == 0 and elapsed > 1:
                    print(f"[{elapsed:6.0f}s] ops {done}, faults {sum(self.faults.values())}, "
                          f"requests {sum(self.requests.values())}, violations {len(self.violations)}", flush=True)
                    time.sleep(0.5)
        finally:
            self.stop_event.set()
            for t in threads:
                t.join(timeout=150)
            if self.router is not None:
                self.router.terminate()
                try:
                    self.router.wait(10)
                except subprocess.TimeoutExpired:
                    self.router.kill()
        self.check()
        rc, out = self.finish(self.cli("stop", "--all"), timeout=60)
        if rc != 0:
            self.violation("stop-all", f"stop --all exited {rc}: {out[-300:]!r}")
        deadline = time.monotonic() + 10
        while True:
            servers, watchers = self.our_procs()
            left = [p.pid for ps in servers.values() for p in ps] + [p.pid for p in watchers]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if left:
            self.violation("stop-all", f"processes of ours still run after stop --all: {left}")
            for pid in left:  # ours: clean up
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.check_logs()
        for d in self.decoys:
            if d.poll() is not None:
                self.violation("signalled-stranger", f"decoy pid {d.pid} ended")
            d.kill()
            d.wait()
        return {"seconds": round(time.monotonic() - self.started_at, 1), "operations": dict(self.ops),
                "operations_total": sum(self.ops.values()), "faults": dict(self.faults),
                "faults_total": sum(self.faults.values()),
                "requests": {str(k): v for k, v in self.requests.items()},
                "servers_seen_ready": {m: len(v) for m, v in self.ready_pids.items()},
                "violations": self.violations}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="llmdeck-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    work = work.resolve()
    soak = Soak(work, args.seconds, args.seed)
    summary = soak.run()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"soak: {summary['seconds']} s, {summary['operations_total']} operations {summary['operations']}")
        print(f"      {summary['faults_total']} faults injected {summary['faults']}")
        print(f"      router requests by answer {summary['requests']}")
        print(f"      servers seen ready {summary['servers_seen_ready']}")
        print(f"      {len(summary['violations'])} invariant violations")
        for v in summary["violations"]:
            print("      " + v)
    if args.workdir is None and not summary["violations"]:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if summary["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
