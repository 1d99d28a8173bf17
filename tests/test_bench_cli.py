"""``llmdeck bench`` end to end against the real llama-server: the seed table, the saved report,
--history, --json, a ShareGPT file, partial failures, and one-line errors."""

from __future__ import annotations

import json

import pytest

from conftest import free_port
from tui.cli.main import main


def _registry(tmp_path, models: dict) -> str:
    p = tmp_path / "models.json"
    p.write_text(json.dumps({"settings": {}, "models": models}, indent=2))
    return str(p)


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.server
@pytest.mark.timeout(240)
def test_bench_prints_the_seed_table_saves_the_report_and_shows_history(llama_server, smollm_gguf, tmp_path, capsys):
    srv = llama_server(parallel=4, ctx=2048)
    reg = _registry(tmp_path, {
        "smol": {"engine": "external", "base_url": srv.base_url, "alias": "smollm2"},
        # a llama-server entry llmdeck did not start: reached on its default_port
        "smol-local": {"model_path": str(smollm_gguf), "default_port": srv.port, "params": {"parallel": 4},
                       "env": {"HF_TOKEN": "hf_do_not_save"}},
    })

    code, out, err = _run(capsys, "--registry", reg, "bench", "smol", "-w", "burst", "-w", "concurrency=2",
                          "-n", "3", "--max-tokens", "4")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["Workload", "Output", "(tok/s)", "TTFT", "(ms)", "E2E", "latency", "(ms)"]
    assert lines[1].startswith("burst ") and lines[2].startswith("concurrency (2) ")
    assert all(float(x) > 0 for x in lines[1].split()[1:4])
    assert "medians (p50)" in out and "TTFT p99" in out
    assert f"bench smol at {srv.base_url} (4 slots · ctx 512/slot" in err and "saved " in err
    saved = list((tmp_path / "logs" / "bench").glob("smol-*.json"))
    assert len(saved) == 1
    rep = json.loads(saved[0].read_text())
    assert [r["workload"] for r in rep["runs"]] == ["burst", "concurrency=2"]
    assert rep["server"]["total_slots"] == 4 and rep["server"]["n_ctx"] == 512
    assert rep["settings"]["engine"] == "external" and rep["settings"]["base_url"] == srv.base_url
    assert rep["prompts"]["source"] == "synthetic" and rep["options"]["max_tokens"] == 4
    for r in rep["runs"]:
        assert r["completed"] == 3 and r["errors"] == 0 and 3 <= r["output_tokens"] <= 12
        assert r["ttft_ms"]["p50"] <= r["e2e_ms"]["p50"] and sum(r["histograms"]["e2e_ms"]["counts"]) == 3

    # --json: the report on stdout, nothing else
    code, out, err = _run(capsys, "--registry", reg, "bench", "smol-local", "-w", "rate=20", "-n", "2",
                          "--max-tokens", "3", "--json")
    assert code == 0, err
    rep2 = json.loads(out)
    assert rep2["runs"][0]["title"] == "rate (20 req/s)" and rep2["settings"]["params"] == {"parallel": 4}
    assert rep2["settings"]["env"] == {"HF_TOKEN": "***"} and "hf_do_not_save" not in out
    assert rep2["path"].endswith(".json") and "hf_do_not_save" not in open(rep2["path"]).read()

    # a ShareGPT file; one prompt cannot fit a 512-token slot: exit 1, tables still printed and saved
    sg = tmp_path / "sg.json"
    sg.write_text(json.dumps([
        {"conversations": [{"from": "human", "value": "Name three rivers please."},
                           {"from": "gpt", "value": "Nile, Amazon and Danube."}]},
        {"conversations": [{"from": "human", "value": "tell " * 700}, {"from": "gpt", "value": "a long tale " * 20}]},
    ]))
    code, out, err = _run(capsys, "--registry", reg, "bench", "smol", "--prompts", str(sg), "-n", "4",
                          "-w", "concurrency=4", "--max-tokens", "3")
    assert code == 1
    assert "concurrency (4) " in out
    assert "llmdeck: error: concurrency=4: 2 of 4 requests failed: HTTP 400:" in err
    assert f"prompts {sg}" in err

    # --history: every saved run, oldest first, in the seed layout plus when and settings
    code, out, err = _run(capsys, "--registry", reg, "bench", "smol", "--history")
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split()[:3] == ["When", "Workload", "Output"]
    assert [r.split()[2] for r in rows[1:4]] == ["burst", "concurrency", "concurrency"]
    assert "4 slots · ctx 512/slot" in rows[1]
    code, out, err = _run(capsys, "--registry", reg, "bench", "smol-local", "--history", "--json")
    assert code == 0 and len(json.loads(out)) == 1


@pytest.mark.timeout(60)
def test_bench_errors_are_one_line_with_the_right_exit_code(tmp_path, capsys):
    down = free_port()
    reg = _registry(tmp_path, {"down": {"engine": "external", "base_url": f"http://127.0.0.1:{down}/v1"},
                               "local": {"model_path": "x.gguf", "default_port": down}})
    bad = tmp_path / "bad.json"
    bad.write_text('[{"conversations": oops}]')
    cases = [
        (["bench", "nope"], 2, "no model 'nope'"),
        (["bench", "down", "-w", "bursty"], 2, "unknown workload 'bursty'"),
        (["bench", "down", "-w", "rate=0"], 2, "rate must be a positive number"),
        (["bench", "down", "-n", "0"], 2, "--requests must be 1 or more"),
        (["bench", "down", "--max-tokens", "0"], 2, "--max-tokens must be 1 or more"),
        (["bench", "down", "--prompts", str(bad)], 2, f"--prompts {bad}: invalid JSON at character"),
        (["bench", "down", "--prompts", str(tmp_path / "none.json")], 2, "file not found"),
        (["bench", "down"], 1, "model 'down' is stopped"),
        (["bench", "local"], 1, f"model 'local': nothing answers at http://127.0.0.1:{down}"),
        (["bench", "nope", "--history"], 2, "no model 'nope'"),
    ]
    for argv, want_code, words in cases:
        code, out, err = _run(capsys, "--registry", str(reg), *argv)
        assert code == want_code, (argv, err)
        assert out == ""
        assert len(err.strip().splitlines()) == 1 and err.startswith("llmdeck: error: ") and words in err, (argv, err)
        assert "Traceback" not in err
    code, out, err = _run(capsys, "--registry", str(reg), "bench", "down", "--history")
    assert code == 0 and "no saved runs of 'down'" in err
