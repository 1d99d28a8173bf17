"""``llmdeck connect``: the base URL here, the ssh -L line and base URL for a laptop, a curl that works."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from tui.cli.main import main
from tui.core import registry
from tui.core.connect import connect


def test_lines_for_local_open_and_keyed_servers(tmp_path):
    p = tmp_path / "models.json"
    p.write_text(json.dumps({"models": {
        "glm-5": {"model_path": "x.gguf", "default_port": 8001},
        "lan": {"model_path": "x.gguf", "default_port": 8002, "host": "0.0.0.0", "api_key_env": "LAN_KEY"},
        "far": {"engine": "external", "base_url": "http://10.0.0.2:8000/v1"}}}))
    reg = registry.load(p)
    c = connect(reg.models["glm-5"], "http://127.0.0.1:8001/v1", ssh_host="me@box")
    assert c.ssh == "ssh -N -L 8001:127.0.0.1:8001 me@box" and c.laptop_base_url == "http://127.0.0.1:8001/v1"
    assert c.local and c.direct_url is None and "Authorization" not in c.curl
    assert c.env == "OPENAI_BASE_URL=http://127.0.0.1:8001/v1 OPENAI_API_KEY=none"
    k = connect(reg.models["lan"], "http://127.0.0.1:8002/v1", ssh_host="me@box")
    assert not k.local and k.direct_url.endswith(":8002/v1")
    assert '-H "Authorization: Bearer $LAN_KEY"' in k.curl  # the key is read on the server, never printed
    assert "OPENAI_API_KEY=<the value of $LAN_KEY on the server>" == k.env.split(" ", 1)[1]
    f = connect(reg.models["far"], "http://10.0.0.2:8000/v1")
    assert f.ssh is None and f.curl.startswith("curl -sS http://10.0.0.2:8000/v1/chat/completions")


@pytest.mark.server
@pytest.mark.timeout(90)
def test_the_printed_curl_gets_an_answer_from_the_running_server(make_deck, capsys):
    from tui.core import supervisor

    reg = make_deck({"tiny": {"alias": "smol"}})
    assert main(["--registry", str(reg.path), "connect", "tiny"]) == 0
    out, err = capsys.readouterr()
    assert "is not running" in err and "ssh -N -L" in out
    supervisor.start(reg, "tiny")
    assert supervisor.wait_ready(reg, "tiny", timeout=60).state == "ready"
    assert main(["--registry", str(reg.path), "connect", "tiny", "--ssh-host", "me@box"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    port = reg.models["tiny"].default_port
    assert f"ssh -N -L {port}:127.0.0.1:{port} me@box" in out.splitlines()
    curl = next(x for x in out.splitlines() if x.startswith("curl "))
    r = subprocess.run(shlex.split(curl), capture_output=True, text=True, timeout=60)
    reply = json.loads(r.stdout)
    assert reply["model"] == "smol" and reply["choices"][0]["message"]["content"]
    assert main(["--registry", str(reg.path), "connect", "tiny", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["base_url"] == f"http://127.0.0.1:{port}/v1"
