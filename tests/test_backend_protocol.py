"""The UI's door to the core (:class:`tui.ui.door.CoreDoor`): the real backend and the tests'
fake both implement every member with the door's signature, and the door lists every call the
app and the widgets make on a backend (so none of them needs ``getattr(backend, "x", None)``)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import ui_fakes as F

from tui.ui.backend import Backend
from tui.ui.door import CoreDoor

ROOT = Path(__file__).resolve().parent.parent
UI = ROOT / "tui" / "ui"


def door_methods() -> list[str]:
    return sorted(n for n, v in vars(CoreDoor).items() if not n.startswith("_") and callable(v))


def door_attributes() -> list[str]:
    return sorted(CoreDoor.__annotations__)


def shape(fn) -> list[tuple[str, str, object]]:
    """A signature without annotations: each parameter's name, kind and default."""
    return [(p.name, p.kind.name, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.fixture
def backends(tmp_path):
    reg = F.write_registry(tmp_path)
    return {"Backend": Backend(reg), "FakeBackend": F.FakeBackend(reg)}


def test_the_door_names_the_calls_the_ui_makes():
    door = set(door_methods()) | set(door_attributes())
    called: dict[str, str] = {}
    for path in sorted(UI.rglob("*.py")):
        if path.name in ("backend.py", "door.py"):
            continue
        for m in re.finditer(r"\bbackend\.([a-z_][a-z0-9_]*)\b", path.read_text(encoding="utf-8")):
            called.setdefault(m.group(1), str(path.relative_to(ROOT)))
    assert {"status", "log_path", "bench_session", "eval_reports", "registry"} <= set(called), called
    missing = {name: where for name, where in called.items() if name not in door}
    assert not missing, f"called on a backend but not in tui.ui.door.CoreDoor: {missing}"


def problems(be) -> list[str]:
    """Where ``be`` differs from the door: a member missing, or a method with another signature."""
    out = []
    which = type(be).__name__
    for name in door_methods():
        impl = getattr(type(be), name, None)
        if not callable(impl):
            out.append(f"{which} lacks {name}()")
        elif shape(impl) != shape(getattr(CoreDoor, name)):
            out.append(f"{which}.{name}{inspect.signature(impl)} differs from the door's "
                       f"{inspect.signature(getattr(CoreDoor, name))}")
    out += [f"{which} lacks the attribute {n}" for n in door_attributes() if not hasattr(be, n)]
    return out


@pytest.mark.parametrize("which", ["Backend", "FakeBackend"])
def test_backend_implements_every_method_with_the_doors_signature(backends, which):
    assert len(door_methods()) >= 25 and door_attributes() == ["registry"]
    assert problems(backends[which]) == []


def test_a_fake_that_lags_fails_the_check(tmp_path):
    """The check itself: a method left out, or one with another signature, is caught."""

    class Lagging(F.FakeBackend):
        memory_fit = None

        def follower(self, name):  # the door's takes a backlog too
            return None

    found = problems(Lagging(F.write_registry(tmp_path)))
    assert sorted(f.split(" differs")[0] for f in found) == ["Lagging lacks memory_fit()", "Lagging.follower(self, name)"]


def test_the_fakes_answers_where_the_core_is_missing(backends):
    """What the fake answers instead of a network, a server or a GPU: one-line errors, nothing to show."""
    be = backends["FakeBackend"]
    assert be.first_status() == {} and be.router_view() == (None, {}) and be.memory_fit("glm-5", None) is None
    assert be.bench_reports("glm-5") == [] and be.eval_reports("glm-5") == []
    for call in (lambda: be.bench_session("glm-5", [], None), lambda: be.eval_session("glm-5", None),
                 lambda: be.download_plan("glm-5")):
        with pytest.raises(Exception) as exc:
            call()
        assert "glm-5" in str(exc.value) and "\n" not in str(exc.value)
    files, size = be.deletable("glm-5")
    assert (files, size) == ([], 0)
    be.delete_files("glm-5")
    assert be.calls[-1] == ("delete_files", "glm-5")
