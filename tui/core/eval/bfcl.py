"""The one module that touches ``bfcl_eval``: BFCL's cases, possible answers and AST checker.

The PyPI package ``bfcl-eval`` (pinned: :data:`BFCL_VERSION`) holds the data
(``bfcl_eval/data/BFCL_v4_*.json`` and ``data/possible_answer/``) and the checker
(``bfcl_eval.eval_checker.ast_eval.ast_checker.ast_checker``). Its wheel is fetched with
``pip download --no-deps`` into llmdeck's cache (``llmdeck setup`` does it, like llama-server's
source) and unpacked there::

    ~/.cache/llmdeck/dl/bfcl_eval-2026.3.23-py3-none-any.whl
    ~/.cache/llmdeck/bfcl/bfcl_eval-2026.3.23/bfcl_eval/…

Its dependencies are not installed. The import chain of the checker is
``ast_checker`` → ``constants.enums``, ``constants.type_mappings``, the Java/JS type converters
(plain Python) and ``constants.model_config``, which imports every provider handler and with it
every provider SDK (anthropic, cohere, google-genai, …). That one module is replaced in
``sys.modules`` by a small stand-in whose ``MODEL_CONFIG_MAPPING`` answers every model with
``underscore_to_dot=True``: llmdeck sends tools the way BFCL's OpenAI function-calling handler
does (dots in names made ``_``), so the checker must compare names with dots as ``_``, as BFCL
does for its OpenAI FC models. ``bfcl_eval.utils`` (the dataset loaders, the language hints,
``is_empty_output``) needs only ``filelock``; a stand-in is used when that is not installed.

Tools are built with BFCL's own ``convert_to_tool`` / ``_cast_to_openai_type`` (model style
``OPENAI_COMPLETIONS``, mapping ``GORILLA_TO_OPENAPI``). Their module,
``model_handler/utils.py``, imports tree-sitter and tenacity at the top, so those two functions
are compiled from the wheel's own source (the function definitions alone, unchanged) instead
of importing the module. The section summaries use BFCL's ``calculate_weighted_accuracy`` /
``calculate_unweighted_accuracy`` the same way (their module imports pandas).

How a case is scored (BFCL's ``eval_runner`` for FC models, reproduced in :func:`check`
because that module imports pandas, tqdm and dotenv): the model's calls become
``[{name: arguments_json}]`` (or its text when it made no call), the OpenAI handler's
``decode_ast`` JSON-decodes the arguments, then relevance/irrelevance cases pass when a call
was / was not decoded (``is_empty_output``), and AST cases go through ``ast_checker`` with the
function docs loaded without the language hints, as BFCL's evaluation loads them.
"""

from __future__ import annotations

import ast
import difflib
import json
import sys
import threading
import types
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from tui.core.provision import BFCL_PACKAGE, BFCL_VERSION  # the pin lives with the other setup assets
from tui.core.provision import BFCL_WHEEL as WHEEL_NAME
#: the model name handed to the checker (any name works with the stand-in model table)
CHECKER_MODEL = "llmdeck-openai-fc"
#: BFCL's default sampling temperature (``bfcl generate --temperature``)
DEFAULT_TEMPERATURE = 0.001
#: the seed's v3 names of the v4 categories that were renamed
V3_NAMES = {"simple_python": "simple", "simple_java": "java", "simple_javascript": "javascript"}
#: seed 004's categories that BFCL v4 dropped: listed in the table, never run
NOT_IN_V4 = ("rest", "sql")
#: seed 004 (GLM-4.7-Flash on LightLLM): its function-calling table, by v4 name
SEED_004 = {"simple_python": 62.50, "multiple": 54.50, "parallel": 69.50, "parallel_multiple": 61.50,
            "simple_java": 66.00, "simple_javascript": 48.00, "irrelevance": 83.33, "live_simple": 45.74,
            "live_multiple": 34.00, "live_parallel": 25.00, "live_parallel_multiple": 37.50,
            "rest": 2.86, "sql": 28.00, "overall": 49.12}
SEED_004_MODEL = "glm-4.7-flash"


class BfclError(RuntimeError):
    """BFCL's package is missing or unusable, or a category is unknown (one-line message)."""


# --- the wheel ------------------------------------------------------------------------------

def cache_root() -> Path:
    from tui.core.provision import bfcl_root

    return bfcl_root()


def _usable(root: Path) -> bool:
    from tui.core.provision import bfcl_usable

    return bfcl_usable(root)


def not_found_message() -> str:
    from tui.core.provision import cache_dir

    return (f"BFCL's package {BFCL_PACKAGE}=={BFCL_VERSION} is not in llmdeck's cache: run `llmdeck setup` "
            f"(it runs pip download --no-deps {BFCL_PACKAGE}=={BFCL_VERSION}), or put {WHEEL_NAME} "
            f"in {cache_dir() / 'dl'}")


def fetch(progress=None) -> Path:
    """The unpacked package folder, downloading the wheel (no dependencies) when needed
    (:func:`tui.core.provision.bfcl_package`)."""
    from tui.core import provision

    return provision.bfcl_package(progress or provision._stderr)


def package_root(progress=None) -> Path:
    """The unpacked package, fetching it (pip download, no dependencies) when it is not in the
    cache yet; BfclError with what to install or where to put the wheel when that fails."""
    root = cache_root()
    if _usable(root):
        return root
    from tui.core import provision

    try:
        return fetch(progress=progress or (lambda _m: None))
    except provision.ProvisionError as exc:
        raise BfclError(f"{not_found_message()} ({exc})") from None


# --- loading the checker ---------------------------------------------------------------------

_LOCK = threading.Lock()


@dataclass
class _ModelConfig:
    model_name: str
    display_name: str
    url: str = ""
    org: str = ""
    license: str = ""
    model_handler: str = ""
    input_price: float | None = None
    output_price: float | None = None
    is_fc_model: bool = True
    underscore_to_dot: bool = True


class _AnyModel(dict):
    """BFCL's model table, answering every model as an OpenAI-style FC model."""

    def __missing__(self, key: str) -> _ModelConfig:
        return _ModelConfig(model_name=key, display_name=key)


def _stand_in_model_config() -> types.ModuleType:
    mod = types.ModuleType("bfcl_eval.constants.model_config")
    mod.__doc__ = "llmdeck's stand-in for BFCL's model table (which imports every provider SDK)."
    mod.ModelConfig = _ModelConfig
    mod.MODEL_CONFIG_MAPPING = _AnyModel()
    mod.api_inference_model_map = mod.local_inference_model_map = {}
    return mod


def _stand_in_filelock() -> types.ModuleType:
    mod = types.ModuleType("filelock")

    class FileLock:  # BFCL locks its result files; llmdeck only reads its data
        def __init__(self, *a: Any, **kw: Any) -> None:
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    mod.FileLock = FileLock
    return mod


def _compile_functions(path: Path, names: tuple[str, ...], ns: dict) -> dict:
    """Compile only the named top-level function definitions of BFCL's ``path`` into ``ns``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    body = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    missing = set(names) - {n.name for n in body}
    if missing:
        raise BfclError(f"{path}: BFCL's {', '.join(sorted(missing))} not found: the package is not "
                        f"{BFCL_PACKAGE}=={BFCL_VERSION}")
    exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), ns)
    return ns


class Bfcl:
    """BFCL's pieces, loaded once per process (:func:`load`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        with _LOCK:
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
            sys.modules["bfcl_eval.constants.model_config"] = _stand_in_model_config()
            try:
                import filelock  # noqa: F401
            except ImportError:
                sys.modules["filelock"] = _stand_in_filelock()
            try:
                from bfcl_eval.constants import category_mapping, enums, type_mappings
                from bfcl_eval.eval_checker.ast_eval import ast_checker
                from bfcl_eval import utils
            except ImportError as exc:
                raise BfclError(f"cannot load BFCL's checker from {root}: {exc} (delete that folder and run "
                                "llmdeck setup again)") from None
        self.utils = utils
        self.enums = enums
        self.ast_checker = ast_checker.ast_checker
        self.single_turn = list(category_mapping.SINGLE_TURN_CATEGORY)
        pkg = root / "bfcl_eval"
        ns = {"re": __import__("re"), "copy": __import__("copy"), "json": json,
              "ModelStyle": enums.ModelStyle, "GORILLA_TO_OPENAPI": type_mappings.GORILLA_TO_OPENAPI}
        _compile_functions(pkg / "model_handler" / "utils.py", ("_cast_to_openai_type", "convert_to_tool"), ns)
        self._convert_to_tool = ns["convert_to_tool"]
        self._gorilla_to_openapi = type_mappings.GORILLA_TO_OPENAPI
        acc: dict = {}
        _compile_functions(pkg / "eval_checker" / "eval_runner_helper.py",
                           ("calculate_weighted_accuracy", "calculate_unweighted_accuracy"), acc)
        self.weighted = acc["calculate_weighted_accuracy"]
        self.unweighted = acc["calculate_unweighted_accuracy"]

    def tools(self, functions: list[dict]) -> list[dict]:
        """OpenAI tools as BFCL's OpenAI completions handler sends them."""
        return self._convert_to_tool(functions, self._gorilla_to_openapi, self.enums.ModelStyle.OPENAI_COMPLETIONS)

    def language(self, category: str):
        L = self.enums.Language
        if self.utils.is_java(category):
            return L.JAVA
        if self.utils.is_js(category):
            return L.JAVASCRIPT
        return L.PYTHON


_loaded: Bfcl | None = None


def load(progress=None) -> Bfcl:
    """BFCL's checker and helpers, fetched first when needed (``progress`` gets one line per
    step); raises BfclError with what to do when they cannot be had."""
    global _loaded
    if _loaded is None:
        _loaded = Bfcl(package_root(progress))
    return _loaded


# --- categories and cases ---------------------------------------------------------------------

def categories() -> list[str]:
    """BFCL v4's single-turn categories, in BFCL's order (without loading the package)."""
    return ["simple_python", "simple_java", "simple_javascript", "multiple", "parallel", "parallel_multiple",
            "irrelevance", "live_simple", "live_multiple", "live_parallel", "live_parallel_multiple",
            "live_irrelevance", "live_relevance"]


def parse_category(name: str) -> str:
    """A v4 category from a v4 or seed (v3) name; BfclError with a did-you-mean otherwise."""
    cats = categories()
    key = name.strip().lower()
    if key in cats:
        return key
    back = {v: k for k, v in V3_NAMES.items()}
    if key in back:
        return back[key]
    if key in NOT_IN_V4:
        raise BfclError(f"category '{name}' is not in BFCL v4 (it was dropped after v3): choose from "
                        + ", ".join(cats))
    close = difflib.get_close_matches(key, cats + list(back), n=1, cutoff=0.6)
    hint = f": did you mean '{close[0]}'?" if close else ""
    raise BfclError(f"unknown category '{name}'{hint} (categories: {', '.join(cats)})")


def is_relevance(category: str) -> bool:
    return "relevance" in category  # relevance and irrelevance: a call / no call


@dataclass
class Case:
    """One BFCL case: what is sent, and what the checker compares with."""

    id: str
    category: str
    messages: list[dict]          # the first (only) turn's messages
    tools: list[dict]             # OpenAI tools, as BFCL's OpenAI FC handler sends them
    functions: list[dict]         # the function docs without language hints (the checker's)
    answer: list | None           # BFCL's ground truth; None for relevance/irrelevance

    def question(self) -> str:
        return "\n".join(str(m.get("content", "")) for m in self.messages if m.get("role") == "user")


@lru_cache(maxsize=None)
def _cases(category: str) -> tuple[Case, ...]:
    b = load()
    hinted = b.utils.load_dataset_entry(category, include_prereq=False, include_language_specific_hint=True)
    plain = b.utils.load_dataset_entry(category, include_prereq=False, include_language_specific_hint=False)
    answers: dict[str, Any] = {}
    if not is_relevance(category):
        answers = {e["id"]: e["ground_truth"] for e in b.utils.load_ground_truth_entry(category)}
    by_id = {e["id"]: e for e in plain}
    out = []
    for e in hinted:
        out.append(Case(id=e["id"], category=category, messages=list(e["question"][0]),
                        tools=b.tools(e["function"]), functions=by_id[e["id"]]["function"],
                        answer=answers.get(e["id"])))
    return tuple(out)


def cases(category: str, limit: int | None = None) -> list[Case]:
    """The first ``limit`` cases (all when None) of ``category``, in BFCL's file order."""
    all_ = _cases(category)
    return list(all_[:limit] if limit is not None else all_)


# --- scoring ---------------------------------------------------------------------------------

@dataclass
class Verdict:
    valid: bool
    error: str = ""            # BFCL's error text, joined
    error_type: str = ""       # BFCL's error_type


def _decode_ast(result: Any) -> list[dict]:
    """BFCL's ``OpenAICompletionsHandler.decode_ast`` for FC models."""
    decoded_output = []
    for invoked_function in result:
        name = list(invoked_function.keys())[0]
        params = json.loads(invoked_function[name])
        decoded_output.append({name: params})
    return decoded_output


def check(case: Case, calls: list[tuple[str, str]] | None, text: str = "") -> Verdict:
    """BFCL's verdict on a reply: ``calls`` as (name, arguments JSON text), None when the model
    made no call (its ``text`` is then what BFCL's handler would decode)."""
    b = load()
    result: Any = [{name: args} for name, args in calls] if calls else text
    if is_relevance(case.category):
        try:
            decoded = _decode_ast(result)
            called = not b.utils.is_empty_output(decoded)
            why = ""
        except Exception as exc:
            called, why = False, str(exc)
        if "irrelevance" in case.category:
            return Verdict(True) if not called else Verdict(
                False, "Valid syntax. Successfully decode AST when it should not.", "irrelevance_error:decoder_success")
        return Verdict(True) if called else Verdict(
            False, f"Invalid syntax. Failed to decode AST when it should have. {why}", "relevance_error:decoder_failed")
    try:
        decoded = _decode_ast(result)
    except Exception as exc:
        return Verdict(False, f"Invalid syntax. Failed to decode AST. {exc}", "ast_decoder:decoder_failed")
    if not b.utils.is_function_calling_format_output(decoded):
        return Verdict(False, "Did not output in the specified format.", "ast_decoder:decoder_wrong_output_format")
    try:
        r = b.ast_checker(case.functions, decoded, case.answer, b.language(case.category), case.category,
                          CHECKER_MODEL)
    except Exception as exc:  # the checker itself choked on this output: the case fails, the run goes on
        return Verdict(False, f"BFCL's checker failed: {type(exc).__name__}: {exc}", "checker_exception")
    if r.get("valid"):
        return Verdict(True)
    err = r.get("error") or []
    return Verdict(False, " ".join(str(e) for e in err) if isinstance(err, list) else str(err),
                   str(r.get("error_type", "")))


def summary(accuracies: dict[str, tuple[float, int]]) -> dict[str, float]:
    """BFCL's own section scores (percent) for the sections whose categories all ran:
    Non-Live AST (unweighted over simple = mean of Python/Java/JS, multiple, parallel,
    parallel_multiple), Live AST (weighted by cases over live simple/multiple/parallel/
    parallel_multiple) and Irrelevance (unweighted over irrelevance and live_irrelevance).
    BFCL's own overall also weighs multi-turn and agentic runs (70 %), which this suite does not
    run, so it is not given. ``accuracies`` maps category → (fraction, cases)."""
    b = load()

    def d(cat: str) -> dict:
        acc, n = accuracies[cat]
        return {"accuracy": acc, "total_count": n, "display_accuracy": acc}

    def have(*cats: str) -> bool:
        return all(c in accuracies and accuracies[c][1] > 0 for c in cats)

    out: dict[str, float] = {}
    if have("simple_python", "simple_java", "simple_javascript", "multiple", "parallel", "parallel_multiple"):
        simple = b.unweighted([d("simple_python"), d("simple_java"), d("simple_javascript")])
        out["non_live_ast"] = b.unweighted([simple, d("multiple"), d("parallel"), d("parallel_multiple")],
                                           display_na_if_category_missing=False)["accuracy"] * 100
    live = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")
    if have(*live):
        out["live_ast"] = b.weighted([d(c) for c in live], display_na_if_category_missing=False)["accuracy"] * 100
    if have("irrelevance", "live_irrelevance"):
        out["irrelevance"] = b.unweighted([d("irrelevance"), d("live_irrelevance")])["accuracy"] * 100
    return {k: round(v, 2) for k, v in out.items()}
