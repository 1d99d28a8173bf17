"""Planning and transfers with the real huggingface_hub client against the local Hub server.

Covers: plan sizes/commit/shards/remote header (Range), quant selection, the disk-full
refusal, a cut connection resumed with Range, cancel + resume in a later run, a corrupted
byte that never takes the final name, a server ignoring Range, 401/404, the per-quant
download status, and a real split model that llama-server loads after download.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import threading
import time
from pathlib import Path

import pytest

from hubserver import HubSpec, populate, registry_json
from tui.core import registry
from tui.core.downloads import (Download, DownloadError, HubError, NotEnoughSpace, make_plan)
from tui.core.modelfiles import download_status, local_files

pytestmark = pytest.mark.timeout(60)
TOKEN = "hf_test_secret_token_123"


@pytest.fixture(scope="module")
def hub_spec(smollm_gguf):
    return HubSpec(lambda root: populate(root, smollm=smollm_gguf), token=TOKEN)


@pytest.fixture
def srv(hub, hub_env):
    return hub


@pytest.fixture
def reg(tmp_path, srv):
    path = tmp_path / "models.json"
    path.write_text(json.dumps(registry_json(tmp_path / "models")))
    return registry.load(path)


def plan_for(reg, name, quant=None, **kw):
    kw.setdefault("token", "")
    return make_plan(reg, reg.get(name), quant, **kw)


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def content_gets(srv, path_part=""):
    return [r for r in srv.requests("GET", "/cdn/") if path_part in r.path]


# --- plan -------------------------------------------------------------------------------------

def test_plan_lists_exact_files_at_a_pinned_commit_with_remote_header(reg, srv):
    srv.page_size = 2  # the tree listing comes in pages: the client must follow Link rel=next
    plan = plan_for(reg, "tiny")
    repo = srv.repo("unsloth/Tiny-GGUF")
    assert plan.revision == repo.sha
    assert [f.path for f in plan.files] == [f"Q4_K_M/Tiny-Q4_K_M-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    for f in plan.files:
        assert f.size == repo.files[f.path].size == (srv.root / "unsloth/Tiny-GGUF" / f.path).stat().st_size
        assert f.sha256 == repo.files[f.path].sha256
        assert f.state == "missing" and f.dest == reg.models_dir / "Tiny-GGUF" / "Q4_K_M" / f.name
    assert plan.total_bytes == plan.need_bytes == sum(f.size for f in plan.files)
    assert plan.fits and plan.free_bytes > plan.need_bytes
    assert [(g.prefix, g.count, g.missing) for g in plan.groups] == [("Tiny-Q4_K_M", 3, [])]
    # the header came from shard 1 over a Range request, not a download
    h = plan.header
    assert plan.header_source == "remote"
    assert (h.architecture, h.context_length, h.block_count, h.expert_count, h.expert_used_count,
            h.file_type_name) == ("glm4moe", 202752, 4, 8, 2, "IQ2_XXS")
    gets = content_gets(srv)
    assert gets and all(r.range and r.range.startswith("bytes=0-") for r in gets)
    assert len(srv.requests("GET", "/tree/")) >= 2  # paginated
    # every Hub call named the pinned commit after the first
    assert all(repo.sha in r.path for r in srv.requests(contains="/tree/"))
    assert not list((reg.models_dir).glob("**/*")), "planning must not write anything"


def test_quant_selection_folder_root_file_and_unknown(reg, srv):
    ud = plan_for(reg, "tiny", "UD-IQ2_XXS")  # no pattern: the folder named like the quant
    assert [f.name for f in ud.files] == ["Tiny-UD-IQ2_XXS-00001-of-00002.gguf", "Tiny-UD-IQ2_XXS-00002-of-00002.gguf"]
    q8 = plan_for(reg, "tiny", "Q8_0")  # a root single-file quant; mmproj is not taken
    assert [f.path for f in q8.files] == ["Tiny-Q8_0.gguf"]
    assert q8.header.file_type_name == "Q8_0" and q8.groups == []
    with pytest.raises(DownloadError) as exc:
        plan_for(reg, "tiny", "Q3_K_S")
    msg = str(exc.value)
    assert "\n" not in msg and "Q3_K_S" in msg
    for q in ("Q4_K_M", "UD-IQ2_XXS", "Q8_0", "Huge"):
        assert q in msg


def test_disk_full_refusal_before_any_byte(reg, srv):
    plan = plan_for(reg, "tiny", "Huge")  # two listed shards of 500 TB each
    assert plan.need_bytes == 10**15 and not plan.fits
    with pytest.raises(NotEnoughSpace) as exc:
        plan.check_space()
    assert "Huge" in str(exc.value) and "--force" in str(exc.value) and "free" in str(exc.value)
    srv.log.clear()
    with pytest.raises(NotEnoughSpace):
        Download(plan, token="").run()
    assert srv.requests("GET", "/cdn/") == [] and srv.requests("HEAD") == []
    assert not any(reg.models_dir.glob("**/*.part"))


# --- transfer ---------------------------------------------------------------------------------

def test_download_verifies_and_reports_progress(reg, srv):
    plan = plan_for(reg, "tiny")
    events = []
    res = Download(plan, token="").run(events.append)
    assert res.ok and sorted(res.done) == sorted(f.name for f in plan.files)
    for f in plan.files:
        assert f.dest.is_file() and not f.part.exists()
        assert sha256(f.dest) == f.sha256
    # events: ordered totals, each file ends "done", sizes add up
    overall = [e.overall_done for e in events]
    assert overall == sorted(overall) and overall[-1] == plan.total_bytes
    assert {e.file for e in events if e.status == "done"} == {f.name for f in plan.files}
    assert all(e.overall_total == plan.total_bytes for e in events)
    assert local_files(reg, reg.get("tiny")).status == "present"
    manifest = json.loads((plan.target / ".llmdeck-download.json").read_text())
    assert manifest["revision"] == plan.revision and len(manifest["files"]) == 3
    # a second run finds everything present and fetches nothing
    srv.log.clear()
    again = plan_for(reg, "tiny", read_header=False)
    assert again.complete and again.need_bytes == 0
    res2 = Download(again, token="").run()
    assert res2.ok and res2.bytes_fetched == 0 and srv.requests("GET", "/cdn/") == []


def test_cut_connection_is_resumed_with_range_and_sha256_matches(reg, srv):
    plan = plan_for(reg, "big", read_header=False)
    f = plan.files[0]
    srv.cut_after, srv.cuts_left = 3_000_000, 2  # the first two responses die mid-file
    events = []
    res = Download(plan, token="", backoff=0.05).run(events.append)
    assert res.ok, res.failed
    gets = content_gets(srv)
    assert len(gets) == 3
    assert gets[0].range is None and gets[0].status == 200
    assert gets[1].range == "bytes=3000000-" and gets[1].status == 206
    assert gets[2].range == "bytes=6000000-" and gets[2].status == 206
    assert sha256(f.dest) == f.sha256 == srv.file_sha256("unsloth/Big-GGUF", f.path)
    assert res.bytes_fetched == f.size  # nothing was fetched twice
    retry = [e for e in events if e.status == "retrying"]
    assert len(retry) == 2 and "retrying in" in retry[0].message


def test_disk_writeback_is_started_in_chunks_as_bytes_arrive(reg, srv, monkeypatch):
    """Each WRITEBACK bytes written, the kernel is asked to write that range to disk (so the
    fsync before the rename has little left); ranges are contiguous, also across a resume."""
    from tui.core.downloads import transfer

    assert transfer._start_writeback is not None  # Linux: sync_file_range exists
    calls = []
    real = transfer._start_writeback
    monkeypatch.setattr(transfer, "WRITEBACK", 1 << 20)
    monkeypatch.setattr(transfer, "_start_writeback", lambda fd, off, n: (calls.append((off, n)), real(fd, off, n)))
    plan = plan_for(reg, "big", read_header=False)
    f = plan.files[0]
    srv.cut_after, srv.cuts_left = 3_000_000, 1
    res = Download(plan, token="", backoff=0.05).run()
    assert res.ok, res.failed
    assert sha256(f.dest) == f.sha256
    assert len(calls) >= f.size // (2 << 20) and all(n >= 1 << 20 for _, n in calls)
    # contiguous from 0; after the cut the next range begins where the resumed .part ended
    ends = [off + n for off, n in calls]
    assert calls[0][0] == 0 and all(calls[i + 1][0] in (ends[i], 3_000_000) for i in range(len(calls) - 1))
    assert any(off == 3_000_000 for off, _ in calls) and ends[-1] <= f.size


def test_cancel_keeps_partial_and_next_run_resumes_with_range(reg, srv):
    plan = plan_for(reg, "big", read_header=False)
    f = plan.files[0]
    srv.throttle_bps = 3_000_000
    dl = Download(plan, token="")
    cancelled_at = None
    statuses = []
    for ev in dl.events():
        statuses.append(ev.status)
        if ev.status == "downloading" and ev.done >= 2 * (1 << 20) and cancelled_at is None:
            assert ev.speed > 0 and ev.eta is not None and ev.overall_eta is not None
            dl.cancel.set()
            cancelled_at = time.monotonic()
    stopped = time.monotonic() - cancelled_at
    assert stopped < 1.0, f"cancel took {stopped:.2f}s"
    assert dl.result.cancelled and not dl.result.failed and statuses[-1] == "cancelled"
    assert not f.dest.exists()
    kept = f.part.stat().st_size
    assert 2 * (1 << 20) <= kept < f.size
    st = download_status(reg, reg.get("big"))["Q4_K_M"]
    assert st == {"status": "partial", "bytes_done": kept, "bytes_total": f.size}

    # a new run (new plan, as after a restart) resumes where the partial ends
    srv.throttle_bps = None
    srv.log.clear()
    plan2 = plan_for(reg, "big", read_header=False)
    assert plan2.files[0].state == "partial" and plan2.files[0].have == kept
    assert plan2.need_bytes == f.size - kept
    events = []
    res = Download(plan2, token="").run(events.append)
    assert res.ok and res.bytes_fetched == f.size - kept
    assert [r.range for r in content_gets(srv)] == [f"bytes={kept}-"]
    assert any(e.status == "checking" for e in events)  # the kept bytes were hashed first
    assert any(e.status == "downloading" and e.resumed_from == kept for e in events)
    assert sha256(f.dest) == f.sha256 and not f.part.exists()
    assert download_status(reg, reg.get("big"))["Q4_K_M"]["status"] == "present"


def test_corrupted_byte_fails_verification_and_never_takes_the_final_name(reg, srv):
    plan = plan_for(reg, "big", read_header=False)
    f = plan.files[0]
    srv.corrupt = {f"unsloth/Big-GGUF/{f.path}"}
    res = Download(plan, token="").run()
    assert not res.ok and list(res.failed) == [f.name]
    msg = res.failed[f.name]
    assert "sha256 mismatch" in msg and f.name in msg and "\n" not in msg
    assert not f.dest.exists() and not f.part.exists()
    # a partial whose kept bytes are wrong is caught the same way, and a clean rerun repairs it
    srv.corrupt = set()
    good = (srv.root / "unsloth/Big-GGUF" / f.path).read_bytes()
    bad = bytearray(good[:1 << 20])
    bad[1234] ^= 0xFF
    f.part.write_bytes(bytes(bad))
    res = Download(plan_for(reg, "big", read_header=False), token="").run()
    assert not res.ok and not f.dest.exists() and not f.part.exists()
    res = Download(plan_for(reg, "big", read_header=False), token="").run()
    assert res.ok and f.dest.read_bytes() == good


def test_server_that_ignores_range_restarts_the_file(reg, srv):
    plan = plan_for(reg, "big", read_header=False)
    f = plan.files[0]
    good = (srv.root / "unsloth/Big-GGUF" / f.path).read_bytes()
    f.part.parent.mkdir(parents=True)
    f.part.write_bytes(good[:1_500_000])
    srv.ignore_range = True
    res = Download(plan_for(reg, "big", read_header=False), token="").run()
    assert res.ok
    (get,) = content_gets(srv)
    assert get.range == "bytes=1500000-" and get.status == 200
    assert f.dest.read_bytes() == good


def test_other_files_are_never_overwritten_and_parts_are_locked(reg, srv):
    plan = plan_for(reg, "big", read_header=False)
    f = plan.files[0]
    f.dest.parent.mkdir(parents=True)
    f.dest.write_bytes(b"my own file")
    res = Download(plan, token="").run()
    assert "move it away" in res.failed[f.name] and f.dest.read_bytes() == b"my own file"
    f.dest.unlink()
    with open(f.part, "a+b") as fh:  # another process holds the partial
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        res = Download(plan_for(reg, "big", read_header=False), token="").run()
    assert "another llmdeck process" in res.failed[f.name]


def test_download_status_per_quant(reg, srv):
    model = reg.get("tiny")
    st = download_status(reg, model)
    assert st["Q4_K_M"] == {"status": "missing", "bytes_done": 0, "bytes_total": 5_000_000}
    assert st["Q8_0"] == {"status": "missing", "bytes_done": 0, "bytes_total": None}
    res = Download(plan_for(reg, "tiny", "UD-IQ2_XXS", read_header=False), token="").run()
    assert res.ok
    st = download_status(reg, model)["UD-IQ2_XXS"]
    total = sum(p.stat().st_size for p in (srv.root / "unsloth/Tiny-GGUF/UD-IQ2_XXS").glob("*.gguf"))
    assert st == {"status": "present", "bytes_done": total, "bytes_total": total}
    # one shard removed: partial, with exact counts from the manifest
    shard = reg.models_dir / "Tiny-GGUF" / "UD-IQ2_XXS" / "Tiny-UD-IQ2_XXS-00002-of-00002.gguf"
    size2 = shard.stat().st_size
    shard.unlink()
    st = download_status(reg, model)["UD-IQ2_XXS"]
    assert st == {"status": "partial", "bytes_done": total - size2, "bytes_total": total}


# --- tokens and errors -------------------------------------------------------------------------

def test_401_without_token_404_for_missing_repo_and_token_never_sent_to_cdn(reg, srv, monkeypatch):
    with pytest.raises(HubError) as exc:
        make_plan(reg, reg.get("private"))  # no HF_TOKEN, no token file in HF_HOME
    assert exc.value.status == 401 and "HF_TOKEN" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(HubError) as exc:
        make_plan(reg, reg.get("ghost"))
    assert exc.value.status == 404 and "unsloth/Nope-GGUF" in str(exc.value)
    with pytest.raises(HubError) as exc:
        make_plan(reg, reg.get("gated"))
    assert exc.value.status == 403 and "is gated" in str(exc.value)
    with pytest.raises(HubError) as exc:
        make_plan(reg, reg.get("private"), token="hf_wrong")
    assert "refused the token" in str(exc.value) and "hf_wrong" not in str(exc.value)

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    srv.log.clear()
    plan = make_plan(reg, reg.get("private"))
    res = Download(plan).run()
    assert res.ok
    hub_reqs = [r for r in srv.log if not r.path.startswith("/cdn/")]
    cdn_reqs = [r for r in srv.log if r.path.startswith("/cdn/")]
    assert hub_reqs and all(r.auth for r in hub_reqs)
    assert cdn_reqs and not any(r.auth for r in cdn_reqs) and all(r.host.startswith("localhost:") for r in cdn_reqs)


# --- end to end: a real split model, downloaded, then served -----------------------------------

@pytest.mark.server
@pytest.mark.timeout(120)
def test_real_split_model_downloads_and_llama_server_loads_it(reg, srv, llama_server):
    plan = plan_for(reg, "smollm")
    assert [g.count for g in plan.groups] == [2]
    assert plan.header.architecture == "llama" and plan.header.block_count == 30
    res = Download(plan, token="").run()
    assert res.ok, res.failed
    lf = local_files(reg, reg.get("smollm"))
    assert lf.status == "present" and lf.first.name.endswith("-00001-of-00002.gguf")
    served = llama_server(model=lf.first, ctx=512, metrics=False)  # the first shard: llama.cpp loads the rest
    import urllib.request

    req = urllib.request.Request(served.base + "/completion", method="POST",
                                 data=json.dumps({"prompt": "The capital of France is", "n_predict": 4}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        out = json.loads(r.read())
    assert out["content"].strip() and out["tokens_predicted"] >= 1


def test_events_iterator_stops_the_transfer_when_the_consumer_leaves(reg, srv):
    plan = plan_for(reg, "big", read_header=False)
    srv.throttle_bps = 2_000_000
    dl = Download(plan, token="")
    t0 = time.monotonic()
    for ev in dl.events():
        if ev.status == "downloading" and ev.done > 0:
            break  # leaving the loop closes the generator: the transfer is cancelled
    assert time.monotonic() - t0 < 5
    assert dl.cancel.is_set() and dl.result.cancelled
    assert plan.files[0].part.exists() and not plan.files[0].dest.exists()
    assert threading.active_count() < 20


def test_unwritable_models_dir_and_events_raise_one_line_errors(reg, srv, tmp_path):
    plan = plan_for(reg, "big", read_header=False)
    blocker = tmp_path / "models"
    blocker.write_text("a file where the models folder should be")
    with pytest.raises(DownloadError) as exc:
        list(Download(plan, token="").events())
    assert "cannot write there" in str(exc.value) and "models_dir" in str(exc.value)
    huge = plan_for(reg, "tiny", "Huge", read_header=False)
    with pytest.raises(NotEnoughSpace):
        list(Download(huge, token="").events())


def test_small_non_lfs_files_are_checked_against_the_git_blob_sha1(reg, srv):
    plan = plan_for(reg, "tiny", "Extras")  # files: README.md, config.json (served 200, no redirect)
    assert [f.path for f in plan.files] == ["README.md", "config.json"]
    assert all(f.sha256 is None and f.blob_id for f in plan.files)
    assert plan.header is None and plan.header_error is None
    srv.corrupt = {"unsloth/Tiny-GGUF/config.json"}
    res = Download(plan, token="").run()
    assert res.done == ["README.md"] and "git sha1 mismatch" in res.failed["config.json"]
    assert not (plan.target / "config.json").exists()
    srv.corrupt = set()
    res = Download(plan_for(reg, "tiny", "Extras"), token="").run()
    assert res.ok
    assert (plan.target / "config.json").read_text() == (srv.root / "unsloth/Tiny-GGUF/config.json").read_text()
    assert srv.requests("GET", "/cdn/") == []  # small files come straight from /resolve
