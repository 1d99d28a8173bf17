"""Errors carry their exit code and ``main`` maps them once (issue 14); every engine takes the
same launch arguments; one lock implementation (``safefiles.lock``) serves models.json edits and
a model's start lock."""

from __future__ import annotations

import inspect
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tui.cli.main import main
from tui.core import engines, safefiles
from tui.core.engines.base import Engine
from tui.core.errors import EXIT_FAIL, EXIT_USAGE, LlmdeckError

ROOT = Path(__file__).resolve().parent.parent


def _registry(tmp_path: Path) -> Path:
    p = tmp_path / "models.json"
    p.write_text('{"models": {"tiny": {"model_path": "tiny.gguf", "default_port": 18765}}}')
    return p


@pytest.mark.parametrize("argv", [
    ["start", "tinny"], ["stop", "tinny"], ["restart", "tinny"], ["logs", "tinny"], ["health", "tinny"],
    ["metrics", "tinny"], ["connect", "tinny"], ["delete", "tinny", "--yes"], ["download", "tinny"],
    ["chat", "tinny", "hi"], ["bench", "tinny"], ["bench", "tinny", "--history"], ["eval", "tinny", "--history"],
])
def test_an_unknown_model_is_one_line_and_exit_2_in_every_command(tmp_path, capsys, argv):
    reg = _registry(tmp_path)
    rc = main(["--registry", str(reg), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == EXIT_USAGE
    assert err == [f"llmdeck: error: no model 'tinny' in {reg} (did you mean 'tiny'?); registered: tiny"]


def test_a_failed_start_is_one_line_and_exit_1_without_a_traceback(tmp_path, capsys):
    reg = _registry(tmp_path)  # tiny.gguf is not there: the engine refuses the launch
    rc = main(["--registry", str(reg), "start", "tiny"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == EXIT_FAIL
    assert len(err) == 1 and err[0].startswith("llmdeck: error: model 'tiny'") and "Traceback" not in err[0]


def test_a_bad_registry_prints_one_line_per_problem_and_exits_2(tmp_path, capsys):
    p = tmp_path / "models.json"
    p.write_text('{"models": {"a": {"default_port": "x"}, "b": {"enginee": 1}}}')
    rc = main(["--registry", str(p), "status"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == EXIT_USAGE
    assert len(err) >= 2 and all(line.startswith(f"llmdeck: error: {p}: models.") for line in err)


def test_core_errors_carry_their_exit_code():
    from tui.core.engines.base import LaunchError
    from tui.core.registry import RegistryError, UnknownModel
    from tui.core.supervisor import SupervisorError

    assert {c: c.exit_code for c in (RegistryError, UnknownModel, LaunchError, SupervisorError)} == {
        RegistryError: EXIT_USAGE, UnknownModel: EXIT_USAGE, LaunchError: EXIT_FAIL, SupervisorError: EXIT_FAIL}
    assert all(issubclass(c, LlmdeckError) for c in (RegistryError, UnknownModel, LaunchError, SupervisorError))
    assert issubclass(UnknownModel, KeyError)  # callers that catch KeyError keep working


def test_every_engine_takes_the_same_launch_arguments():
    base = inspect.signature(Engine.launch)
    for name in engines.BUILTIN:
        eng = engines.get_engine(name)
        if eng is not None:
            assert inspect.signature(type(eng).launch) == base, name


def test_one_lock_a_waiter_gives_up_naming_the_holder(tmp_path):
    path = tmp_path / "x.lock"
    code = ("import sys, time\nfrom pathlib import Path\nfrom tui.core import safefiles\n"
            f"with safefiles.lock(Path({str(path)!r}), timeout=5, record_pid=True):\n"
            "    print('held', flush=True)\n    time.sleep(30)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with pytest.raises(safefiles.LockBusy) as exc:
            with safefiles.lock(path, timeout=0.2):
                pass
        assert exc.value.holder == holder.pid and time.monotonic() - t0 < 5
    finally:
        holder.kill()
        holder.wait()
    with safefiles.lock(path, timeout=5):  # the lock went with the process
        pass
