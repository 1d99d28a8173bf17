"""Telemetry in the TUI: one core ``Sampler`` thread at 1 Hz over the running servers; its
samples go to the gauges (drawn only where shown), the models table's cells and the note
under the table (why VRAM is n/a, the router's on-demand line)."""

from __future__ import annotations

from tui.core.verbs import RUNNING
from tui.ui import ondemand_view
from tui.ui.messages import TelemetrySampled


class TelemetryView:
    """Sampler wiring; the app provides ``backend``, ``table``, the gauges views and ``models_note``."""

    def _start_sampler(self) -> None:
        try:
            self.sampler = self.backend.sampler(lambda: list(self.table.refs), interval=self.telemetry_interval)
        except Exception as exc:  # noqa: BLE001 — gauges off, the rest works
            self.notify(f"telemetry off: {exc}", severity="warning")
            return
        history = self.sampler.history

        def deliver(snap) -> None:
            self.post_message(TelemetrySampled(snap, history))

        self.sampler.subscribe(deliver)
        self.sampler.start()

    def on_telemetry_sampled(self, message: TelemetrySampled) -> None:
        if not self._alive():
            return
        self.table.set_snapshot(message.snapshot)
        self._update_models_note()
        if self.tabs is None:
            return
        # a hidden view keeps the sample and draws it when shown (tab switch, wide layout):
        # an idle TUI must not lay out what nobody sees every second
        for view, shown in ((self.gauges_view, self.tabs.active == "gauges"),
                            (self.side_gauges, self._main.has_class("-wide"))):
            if shown:
                view.show(message.snapshot, message.history)
            else:
                view.snapshot, view.history = message.snapshot, message.history

    def vram_note(self) -> str:
        """Why a running model's VRAM cell says n/a (one line under the table), or ""."""
        snap = self.table.snapshot
        if snap is None:
            return ""
        for name in self.table.matching():
            st = self.states.get(name)
            sample = snap.model(name) if st is not None and st.state in RUNNING else None
            u = sample.usage if sample is not None else None
            if u is not None and u.vram_bytes is None:
                reason = u.note or (snap.gpu.message or snap.gpu.state if not snap.gpu.ok else None)
                return f"VRAM n/a: {reason or 'not reported for this process'}"
        return ""

    def _update_models_note(self) -> None:
        note = self.vram_note()
        if od := ondemand_view.note(self.selected, self.table.router_view[1].get(self.selected or ""),
                                  self.table.router_view[0]):
            note = f"{note} · {od}" if note else od
        if note != getattr(self, "_note_shown", ""):  # an update is a layout pass: only on change
            self._note_shown = note
            self.models_note.update(note)
            self.models_note.tooltip = note or None  # the whole reason where the line is cut
            self.models_note.set_class(bool(note), "-shown")

