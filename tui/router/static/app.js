// llmdeck's front page: plain JS, no build step, relative URLs only (works through ssh -L at any port).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const KEY = "llmdeck-router-key";
  const st = { keyed: false, models: [], selected: null, logCursor: null, logFor: null, chat: [], abort: null,
               needKey: false, rows: new Map() };

  // --- fetch with the key (kept in this tab's sessionStorage only) --------------------------
  function key() { try { return sessionStorage.getItem(KEY) || ""; } catch (e) { return ""; } }
  function headers(extra) {
    const h = Object.assign({}, extra || {});
    const k = key();
    if (k) h["Authorization"] = "Bearer " + k;
    return h;
  }
  async function api(path, opts) {
    opts = opts || {};
    const r = await fetch(path, Object.assign({}, opts, { headers: headers(opts.headers), cache: "no-store" }));
    if (r.status === 401) { askKey(key() ? "that key was refused" : "this router needs its API key"); }
    return r;
  }
  function askKey(why) {
    st.needKey = true;
    $("keyform").hidden = false; $("forget").hidden = true;
    $("keymsg").textContent = why; $("keymsg").className = "warn";
    if (document.activeElement === document.body) $("key").focus();
  }
  $("keyform").addEventListener("submit", (ev) => {
    ev.preventDefault();
    try { sessionStorage.setItem(KEY, $("key").value.trim()); } catch (e) { /* private mode */ }
    $("key").value = ""; $("keyform").hidden = true; st.needKey = false;
    pollStatus();
  });
  $("forget").addEventListener("click", () => { sessionStorage.removeItem(KEY); st.keyed = false; askKey("key forgotten"); });

  // --- formatting ------------------------------------------------------------------------------
  function bytes(n) {
    if (n === null || n === undefined) return "–";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0;  // binary units, as everywhere in llmdeck
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(n < 10 ? 1 : 0) : n) + " " + u[i];
  }
  function secs(s) {
    if (s === null || s === undefined) return "";
    s = Math.round(s);
    return s >= 3600 ? Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") :
      s >= 60 ? Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") : s + "s";
  }
  function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }
  function setText(e, t) { if (e.textContent !== t) e.textContent = t; }

  // --- models ----------------------------------------------------------------------------------
  function noteOf(m) {
    if (m.state === "loading" || m.state === "starting")
      return [m.stage || "", m.load_eta_s != null ? "ETA " + secs(m.load_eta_s) : ""].filter(Boolean).join(", ");
    if (m.state === "crashed") {
      let n = (m.exit && m.exit.reason) || m.last_error || "";
      if (m.restarting_in_s) n += "; restarting in " + Math.round(m.restarting_in_s) + "s";
      return n;
    }
    return m.last_error || "";
  }
  function makeRow(name) {
    const tr = el("tr"); tr.dataset.name = name;
    const cells = {};
    ["name", "state", "port", "quant", "vram", "rss", "tps", "slots", "od", "act"].forEach((k) => {
      const td = el("td"); if (["port", "vram", "rss", "tps", "slots"].includes(k)) td.className = "num";
      if (k === "act") td.className = "act";
      cells[k] = td; tr.appendChild(td);
    });
    const nb = el("button", "name", name); nb.type = "button"; nb.title = "show this model's log and chat";
    nb.addEventListener("click", () => select(name)); cells.name.appendChild(nb);
    cells.badge = el("span", "badge"); cells.pct = el("span", "pbar"); cells.pctFill = el("i"); cells.pct.appendChild(cells.pctFill);
    cells.note = el("span", "note");
    cells.state.append(cells.badge, cells.pct, cells.note);
    const logs = el("button", "", "Logs"); logs.type = "button"; logs.addEventListener("click", () => { select(name); tab("logs"); });
    const chat = el("button", "", "Chat"); chat.type = "button"; chat.addEventListener("click", () => { select(name); tab("chat"); $("q").focus(); });
    cells.start = el("button", "ctl", "Start"); cells.start.type = "button"; cells.start.addEventListener("click", () => control(name, "start"));
    cells.stop = el("button", "ctl", "Stop"); cells.stop.type = "button"; cells.stop.addEventListener("click", () => control(name, "stop"));
    cells.act.append(logs, chat, cells.start, cells.stop);
    return { tr, cells };
  }
  function renderModels(models) {
    const body = document.querySelector("#models tbody");
    const seen = new Set();
    models.forEach((m, i) => {
      seen.add(m.name);
      let row = st.rows.get(m.name);
      if (!row) { row = makeRow(m.name); st.rows.set(m.name, row); }
      if (body.children[i] !== row.tr) body.insertBefore(row.tr, body.children[i] || null);
      const c = row.cells;
      row.tr.dataset.state = m.state;
      setText(c.badge, m.state); c.badge.className = "badge st-" + m.state;
      const loading = (m.state === "loading" || m.state === "starting") && m.load_pct != null;
      c.pct.hidden = !loading;
      if (loading) { c.pctFill.style.width = Math.round(m.load_pct) + "%"; c.pct.title = Math.round(m.load_pct) + "%"; }
      setText(c.note, noteOf(m) + (loading ? " · " + Math.round(m.load_pct) + "%" : ""));
      setText(c.port, m.port ? String(m.port) : "");
      setText(c.quant, m.quant || "");
      setText(c.vram, m.pid ? bytes(m.vram_bytes) : "");
      setText(c.rss, m.pid ? bytes(m.rss_bytes) : "");
      const s = m.server || {};
      setText(c.tps, s.tokens_per_s != null ? s.tokens_per_s.toFixed(1) : (m.state === "ready" ? "–" : ""));
      setText(c.slots, s.total_slots != null ? (s.busy_slots || 0) + "/" + s.total_slots : "");
      const unl = m.unloads_in_s != null ? "unloads in " + secs(m.unloads_in_s) : "";
      const od = m.on_demand ? ["yes", unl].filter(Boolean).join(", ") : unl || (m.on_demand === false ? "no" : "–");
      setText(c.od, od);
      const running = ["starting", "loading", "ready", "unhealthy"].includes(m.state);
      const local = m.engine !== "external";
      c.start.hidden = !st.keyed || running || !local || m.state === "stopping";
      c.stop.hidden = !st.keyed || !running || !local;
      row.tr.classList.toggle("sel", m.name === st.selected);
    });
    for (const [name, row] of st.rows) if (!seen.has(name)) { row.tr.remove(); st.rows.delete(name); }
    $("models-empty").hidden = models.length > 0;
    // the model picker: every model (logs of any; chat answers only for a ready one)
    const pick = $("pick");
    const names = models.map((m) => m.name);
    if ([...pick.options].map((o) => o.value).join("\n") !== names.join("\n")) {
      pick.replaceChildren(...names.map((n) => { const o = el("option", "", n); o.value = n; return o; }));
    }
    if (!st.selected || !names.includes(st.selected)) {
      const ready = models.find((m) => m.state === "ready");
      if (names.length) select((ready || models[0]).name);
    } else if (pick.value !== st.selected) pick.value = st.selected;
    updateChatState();
  }
  async function control(name, action) {
    $("actmsg").textContent = action + " " + name + "…";
    try {
      const r = await api("ui/models/" + encodeURIComponent(name) + "/" + action, { method: "POST" });
      const j = await r.json().catch(() => ({}));
      $("actmsg").textContent = r.ok ? name + ": " + action + " → " + j.state : ((j.error && j.error.message) || ("HTTP " + r.status));
      $("actmsg").className = r.ok ? "muted" : "err";
    } catch (e) { $("actmsg").textContent = String(e); $("actmsg").className = "err"; }
    pollStatus();
  }

  // --- GPUs --------------------------------------------------------------------------------------
  function spark(values, max, cls) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg"); svg.setAttribute("class", "spark");
    svg.setAttribute("viewBox", "0 0 60 20"); svg.setAttribute("preserveAspectRatio", "none");
    const pts = [];
    values.forEach((v, i) => { if (v !== null && max) pts.push((i * 60 / Math.max(1, values.length - 1)).toFixed(1) + "," + (20 - 19 * Math.min(1, v / max)).toFixed(1)); });
    const pl = document.createElementNS(ns, "polyline"); pl.setAttribute("points", pts.join(" ")); pl.setAttribute("class", cls);
    svg.appendChild(pl); return svg;
  }
  function gauge(label, frac, text) {
    const g = el("div", "gauge"); const tr = el("div", "track"); const f = el("div", "fill");
    f.style.width = (frac == null ? 0 : Math.round(Math.min(1, frac) * 100)) + "%"; tr.appendChild(f);
    g.append(el("span", "", label), tr, el("span", "v", text)); return g;
  }
  function renderGpus(r) {
    const box = $("gpus");
    const msg = r.state === "ok" ? (r.gpus.length ? "" : "no GPU found") : (r.message || r.state);
    setText($("gpu-msg"), msg);
    box.replaceChildren(...(r.gpus || []).map((g) => {
      const card = el("div", "gpu"); card.appendChild(el("h3", "", "GPU " + g.index + (g.name ? " · " + g.name : "")));
      if (g.state !== "ok") card.appendChild(el("p", "err", g.note || g.state));
      card.append(gauge("mem", g.mem_total ? g.mem_used / g.mem_total : null, bytes(g.mem_used) + " / " + bytes(g.mem_total)),
        gauge("util", g.util_percent != null ? g.util_percent / 100 : null, g.util_percent != null ? g.util_percent + " %" : "n/a"),
        gauge("temp", g.temp_c != null ? g.temp_c / 100 : null, g.temp_c != null ? g.temp_c + " °C" : "n/a"),
        gauge("power", g.power_w != null && g.power_limit_w ? g.power_w / g.power_limit_w : null,
          g.power_w != null ? Math.round(g.power_w) + (g.power_limit_w ? " / " + Math.round(g.power_limit_w) : "") + " W" : "n/a"));
      const h = g.history || {};
      if ((h.util || []).length > 1) { const s = spark(h.util, 100, "s-util"); s.setAttribute("aria-label", "utilisation, last minute"); card.appendChild(s); }
      if ((h.mem_used || []).length > 1 && g.mem_total) card.appendChild(spark(h.mem_used, g.mem_total, "s-mem"));
      if ((h.util || []).length > 1) card.appendChild(el("div", "stats", "last " + h.util.length + " s: util (green), memory (blue)"));
      return card;
    }));
  }

  // --- status poll -----------------------------------------------------------------------------
  let statusTimer = null;
  async function pollStatus() {
    clearTimeout(statusTimer);
    try {
      const r = await api("ui/status");
      if (r.ok) {
        const j = await r.json();
        st.keyed = !!j.keyed; st.models = j.models || [];
        setText($("conn"), "live · " + new Date((j.at || 0) * 1000).toLocaleTimeString());
        $("conn").className = "ok";
        setText($("mode"), st.keyed ? "" : "read-only: start/stop need a router started with --api-key-env NAME");
        $("forget").hidden = !key();
        renderModels(st.models); renderGpus(j.gpus || { state: "off", gpus: [] });
      } else if (r.status !== 401) {
        setText($("conn"), "router answered HTTP " + r.status); $("conn").className = "err";
      } else { setText($("conn"), "needs the API key"); $("conn").className = "warn"; }
    } catch (e) { setText($("conn"), "router unreachable"); $("conn").className = "err"; }
    if (!st.needKey) statusTimer = setTimeout(pollStatus, 1000);
  }

  // --- selection, tabs ---------------------------------------------------------------------------
  function select(name) {
    if (st.selected === name) return;
    st.selected = name; $("pick").value = name;
    for (const [n, row] of st.rows) row.tr.classList.toggle("sel", n === name);
    st.logCursor = null; st.logFor = name; $("log").replaceChildren(); pollLogs();
    updateChatState();
  }
  $("pick").addEventListener("change", () => select($("pick").value));
  function tab(which) {
    const logs = which === "logs";
    $("tab-logs").setAttribute("aria-selected", String(logs)); $("tab-chat").setAttribute("aria-selected", String(!logs));
    $("logs-pane").hidden = !logs; $("chat-pane").hidden = logs;
  }
  $("tab-logs").addEventListener("click", () => tab("logs"));
  $("tab-chat").addEventListener("click", () => tab("chat"));

  // --- logs ------------------------------------------------------------------------------------
  let logTimer = null;
  async function pollLogs() {
    clearTimeout(logTimer);
    const name = st.selected;
    if (name && !st.needKey) {
      try {
        const q = st.logCursor ? "?cursor=" + encodeURIComponent(st.logCursor) : "";
        const r = await api("ui/logs/" + encodeURIComponent(name) + q);
        if (r.ok && name === st.selected) {
          const j = await r.json();
          const log = $("log");
          if (j.reset) log.replaceChildren();
          setText($("log-name"), j.missing ? "no log yet" : (j.path || ""));
          const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
          const frag = document.createDocumentFragment();
          for (const [text, lvl] of j.lines) frag.appendChild(el("div", lvl, text));
          log.appendChild(frag);
          while (log.childElementCount > 3000) log.firstElementChild.remove();
          if ($("follow").checked && (atEnd || j.lines.length)) log.scrollTop = log.scrollHeight;
          st.logCursor = j.cursor;
        }
      } catch (e) { /* retried next second */ }
    }
    logTimer = setTimeout(pollLogs, 1000);
  }
  $("log").addEventListener("keydown", (ev) => { if (ev.key === "End") $("follow").checked = true; });

  // --- chat (through the router's own /v1: the same routing as any client) ------------------
  function selectedModel() { return st.models.find((m) => m.name === st.selected); }
  function updateChatState() {
    const m = selectedModel();
    const busy = !!st.abort;
    $("send").disabled = busy || !m;
    $("halt").disabled = !busy;
    if (!busy) setText($("chat-msg"), !m ? "" : m.state === "ready" ? "" :
      m.on_demand ? m.name + " is " + m.state + ": the router starts it on demand" : m.name + " is " + m.state);
  }
  function bubble(role) {
    const d = el("div", "msg " + role); d.appendChild(el("div", "who", role === "user" ? "you" : st.selected));
    $("chat").appendChild(d); return d;
  }
  function scrollChat() { const c = $("chat"); c.scrollTop = c.scrollHeight; }
  $("q").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); $("ask").requestSubmit(); }
  });
  $("halt").addEventListener("click", () => { if (st.abort) st.abort.abort(); });
  $("clear").addEventListener("click", () => { st.chat = []; $("chat").replaceChildren(); });
  $("ask").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("q").value.trim(); const m = selectedModel();
    if (!text || !m || st.abort) return;
    $("q").value = "";
    st.chat.push({ role: "user", content: text });
    bubble("user").appendChild(el("div", "content", text));
    const out = bubble("assistant");
    const think = el("details", "think"); think.appendChild(el("summary", "", "thinking")); const thinkPre = el("pre"); think.appendChild(thinkPre); think.hidden = true;
    const content = el("div", "content"); const stats = el("div", "stats", "waiting for the first token…");
    out.append(think, content, stats); scrollChat();
    st.abort = new AbortController(); updateChatState();
    const t0 = performance.now(); let tFirst = null, nTok = 0, answer = "", timings = null, tools = {};
    let inThink = false;
    function addContent(piece) {  // <think>…</think> inside content goes to the thinking block
      while (piece) {
        if (inThink) {
          const e = piece.indexOf("</think>");
          thinkPre.textContent += e < 0 ? piece : piece.slice(0, e); think.hidden = false;
          if (e < 0) return; inThink = false; piece = piece.slice(e + 8);
        } else {
          const s = piece.indexOf("<think>");
          const part = s < 0 ? piece : piece.slice(0, s);
          content.textContent += part; answer += part;
          if (s < 0) return; inThink = true; piece = piece.slice(s + 7);
        }
      }
    }
    try {
      const r = await api("v1/chat/completions", { method: "POST", signal: st.abort.signal,
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ model: m.name, messages: st.chat, stream: true }) });
      if (!r.ok) {
        const j = await r.json().catch(() => ({}));
        throw new Error((j.error && j.error.message) || "HTTP " + r.status);
      }
      const reader = r.body.getReader(); const dec = new TextDecoder(); let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).trim(); buf = buf.slice(nl + 1);
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") continue;
          let j; try { j = JSON.parse(data); } catch (e) { continue; }
          if (j.error) throw new Error(j.error.message || String(j.error));
          if (j.timings) timings = j.timings;
          const d = (j.choices && j.choices[0] && j.choices[0].delta) || {};
          const r1 = d.reasoning_content || d.reasoning;
          if (r1) { thinkPre.textContent += r1; think.hidden = false; }
          if (d.content) addContent(d.content);
          for (const tc of d.tool_calls || []) {
            let t = tools[tc.index || 0];
            if (!t) { t = tools[tc.index || 0] = { box: el("div", "tool"), name: el("b"), args: el("pre") }; t.box.append(t.name, t.args); out.insertBefore(t.box, stats); }
            if (tc.function && tc.function.name) t.name.textContent += "tool call: " + tc.function.name;
            if (tc.function && tc.function.arguments) t.args.textContent += tc.function.arguments;
          }
          if (r1 || d.content || d.tool_calls) { nTok++; if (tFirst === null) tFirst = performance.now(); }
          scrollChat();
        }
        const el_ = (performance.now() - t0) / 1000;
        if (tFirst !== null) setText(stats, "TTFT " + Math.round(tFirst - t0) + " ms · " + nTok + " tokens · " + (nTok / Math.max(0.001, el_ - (tFirst - t0) / 1000)).toFixed(1) + " tok/s");
      }
      const gen = timings && timings.predicted_per_second ? timings.predicted_per_second.toFixed(1) : null;
      setText(stats, "TTFT " + (tFirst === null ? "–" : Math.round(tFirst - t0) + " ms") + " · " + (timings && timings.predicted_n || nTok) +
        " tokens · " + (gen || (nTok / Math.max(0.001, (performance.now() - (tFirst || t0)) / 1000)).toFixed(1)) + " tok/s");
      st.chat.push({ role: "assistant", content: answer });
    } catch (e) {
      stats.className = "stats err";
      setText(stats, e.name === "AbortError" ? "stopped" : String(e.message || e));
      if (answer) st.chat.push({ role: "assistant", content: answer });
    } finally {
      st.abort = null; updateChatState(); scrollChat();
    }
  });

  if (!key()) $("forget").hidden = true;
  pollStatus();
})();
