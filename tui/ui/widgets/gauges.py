"""The gauges pane: per GPU VRAM, utilisation, temperature and power; host CPU and RAM;
per model VRAM, RSS, CPU and tok/s — each with a sparkline of recent history.

It renders a telemetry ``Snapshot`` (and the sampler's ``History``) handed to :meth:`show`;
it reads nothing itself. The sampler runs at 1 Hz and its messages replace each other, so
a busy UI skips stale samples. Rendering is one Rich ``Text`` per sample (block-character
sparklines, no widget per series): a sample costs well under a millisecond to draw.
Colours: green, yellow from 50 %, red from 80 %.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.ui.widgets.format import bar, gib, human_bytes, pct_style, sparkline


class _Gauges:
    """A Rich renderable that lays the gauges out for the width it is rendered at, so a
    resize (or a first render before layout settles) never leaves bars of a stale width."""

    def __init__(self, view: "GaugesView") -> None:
        self.view = view

    def __rich_console__(self, console, options):
        yield self.view.render_snapshot(options.max_width)

    def __rich_measure__(self, console, options):
        from rich.measure import Measurement

        return Measurement(40, options.max_width)


class GaugesView(Static):
    DEFAULT_CSS = """
    GaugesView { height: auto; padding: 0 1; }
    """

    def __init__(self, *, compact: bool = False, **kw) -> None:
        super().__init__("waiting for the first sample…", **kw)
        self.compact = compact
        self.snapshot = None
        self.history = None

    def show(self, snapshot, history=None) -> None:
        self.snapshot, self.history = snapshot, history
        # same number of lines as last time: a repaint, not a layout pass (1 Hz while idle)
        shape = (snapshot.gpu.ok, len(snapshot.gpu.gpus), len(snapshot.models), len(snapshot.notes))
        relayout = shape != getattr(self, "_shape", None)
        self._shape = shape
        self.update(_Gauges(self), layout=relayout)

    def _series(self, key: tuple) -> tuple:
        return self.history.series(key) if self.history is not None else ()

    def render_snapshot(self, width: int | None = None) -> Text:
        snap = self.snapshot
        width = max(40, width if width else (self.size.width or 80) - 2)
        bw = max(8, min(30, (width - 34) // 2))
        sw = max(0, min(60, width - 6 - bw - 26))
        if self.compact:
            sw = min(sw, 20)
        out = Text()

        def line(label: str, pct: float | None, figures: str, key: tuple | None, top: float | None = None,
                 style: str | None = None) -> None:
            out.append(f"{label:<6}", style="bold")
            out.append_text(bar(pct, bw))
            out.append(f" {figures:<25}", style=style or pct_style(pct))
            if key is not None and sw > 0:
                out.append(sparkline(self._series(key), sw, top), style="cyan")
            out.append("\n")

        gpu = snap.gpu
        if not gpu.ok:
            out.append("GPU  ", style="bold")
            out.append(f"{gpu.message or gpu.state}\n", style="dim")
        for g in gpu.gpus:
            head = f"GPU{g.index} {g.name or ''}".rstrip()
            bits = []
            if g.temp_c is not None:
                bits.append(f"{g.temp_c}°C")
            if g.power_w is not None:
                bits.append(f"{g.power_w:.0f}/{g.power_limit_w:.0f} W" if g.power_limit_w else f"{g.power_w:.0f} W")
            if g.state != "ok":
                bits.append(g.note or g.state)
            out.append(head, style="bold")
            if bits:
                out.append(" · " + " · ".join(bits), style="dim" if g.state == "ok" else "red")
            out.append("\n")
            mp = g.mem_percent
            figures = (f"{gib(g.mem_used)}/{gib(g.mem_total)} GiB {mp:.0f}%" if mp is not None else "n/a")
            line(" VRAM", mp, figures, ("gpu", g.index, "mem_used"), top=g.mem_total)
            up = g.util_percent
            line(" util", up, f"{up}%" if up is not None else "n/a", ("gpu", g.index, "util"), top=100)
        s = snap.system
        cpu = s.cpu_percent
        line("CPU", cpu, f"{cpu:.0f}% of {s.cpu_count} cores" if cpu is not None else f"… of {s.cpu_count} cores",
             ("system", "cpu"), top=100)
        line("RAM", s.ram_percent, f"{gib(s.ram_used)}/{gib(s.ram_total)} GiB {s.ram_percent:.0f}%",
             ("system", "ram_used"), top=s.ram_total)
        if snap.models:
            out.append(f"{'model':<16}{'VRAM':>10}{'RSS':>10}{'CPU':>7}{'tok/s':>8}", style="bold underline")
            if sw > 0 and not self.compact:
                out.append("  tok/s history", style="dim")
            out.append("\n")
            for m in snap.models:
                u, st = m.usage, m.server
                vram = human_bytes(u.vram_bytes) if u and u.vram_bytes is not None else "n/a"
                rss = human_bytes(u.rss_bytes) if u and u.rss_bytes is not None else "n/a"
                cpu_m = f"{u.cpu_percent:.0f}%" if u and u.cpu_percent is not None else "n/a"
                tps = f"{st.tokens_per_s:.1f}" if st and st.tokens_per_s is not None else "-"
                out.append(f"{m.name[:15]:<16}{vram:>10}{rss:>10}{cpu_m:>7}{tps:>8}")
                if sw > 0 and not self.compact:
                    out.append("  " + sparkline(self._series(("model", m.name, "tokens_per_s")), min(sw, 30)),
                               style="cyan")
                out.append("\n")
                if u and len(snap.gpu.gpus) > 1 and u.vram_by_gpu:  # which GPUs hold this model
                    out.append("  " + " · ".join(f"GPU{g} {human_bytes(b)}" for g, b in u.vram_by_gpu) + "\n",
                               style="dim")
        for note in snap.notes:
            out.append(f"{note}\n", style="dim")
        out.rstrip()
        return out
