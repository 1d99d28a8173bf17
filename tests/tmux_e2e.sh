#!/usr/bin/env bash
# End-to-end: the installed `llmdeck` in a real terminal (tmux), driven with send-keys and
# checked with capture-pane: start the demo model, see it ready, chat, stop, quit.
#
#   tests/tmux_e2e.sh LLMDECK LLAMA_SERVER MODEL_GGUF PORT WORKDIR
#
# Exits 0 on success; on failure prints the step and the last screen. Uses its own tmux
# server socket (-L) so it never touches the user's tmux sessions.
set -euo pipefail

LLMDECK=$1 LLAMA_SERVER=$2 MODEL=$3 PORT=$4 WORK=$5
TMUX_BIN=${TMUX_BIN:-tmux}
SOCK="llmdeck-e2e-$$"
SESSION=e2e
T=("$TMUX_BIN" -L "$SOCK")

mkdir -p "$WORK"
cat >"$WORK/models.json" <<EOF
{
  "settings": {"llama_server": "$LLAMA_SERVER", "stop_grace_s": 5},
  "models": {
    "smollm2": {
      "description": "SmolLM2-135M demo model",
      "model_path": "$MODEL",
      "alias": "smollm2",
      "default_port": $PORT,
      "params": {"ctx_size": 1024, "threads": 2, "parallel": 1, "temp": 0.0}
    }
  }
}
EOF

cleanup() {
  "${T[@]}" kill-server 2>/dev/null || true
  "$LLMDECK" --registry "$WORK/models.json" stop --all --grace 2 >/dev/null 2>&1 || true
}
trap cleanup EXIT

screen() { "${T[@]}" capture-pane -p -t "$SESSION" 2>/dev/null || true; }

# wait_for TEXT SECONDS STEP: poll the screen until TEXT shows
wait_for() {
  local text=$1 secs=$2 step=$3 i
  for ((i = 0; i < secs * 10; i++)); do
    if screen | grep -qF -- "$text"; then
      echo "ok: $step"
      return 0
    fi
    sleep 0.1
  done
  echo "FAILED: $step (no '$text' on screen after ${secs}s); the screen:" >&2
  screen >&2
  exit 1
}

# the smollm2 row's state column
row_has() { screen | grep -E "^ ?smollm2 " | grep -qF -- "$1"; }
wait_row() {
  local text=$1 secs=$2 step=$3 i
  for ((i = 0; i < secs * 10; i++)); do
    if row_has "$text"; then echo "ok: $step"; return 0; fi
    sleep 0.1
  done
  echo "FAILED: $step (the smollm2 row never showed '$text'); the screen:" >&2
  screen >&2
  exit 1
}

cd "$WORK"
"${T[@]}" -f /dev/null new-session -d -s "$SESSION" -x 100 -y 30 \
  "env TERM=xterm-256color LLMDECK_REGISTRY='$WORK/models.json' '$LLMDECK'; echo LLMDECK-EXITED-\$?; sleep 60"

"${T[@]}" set-option -s escape-time 20  # esc is a key here, not a meta prefix
wait_for "llmdeck" 30 "the TUI draws"
wait_row "stopped" 30 "smollm2 listed as stopped"

"${T[@]}" send-keys -t "$SESSION" s
wait_row "ready" 120 "s: smollm2 is ready"
wait_for "listening on http://127.0.0.1:$PORT" 20 "the live log shows the server listening"

"${T[@]}" send-keys -t "$SESSION" c
wait_for "smollm2 · ready" 10 "c: the chat pane"
wait_for "typing: message · esc leaves" 10 "c: the footer says where typing goes"
"${T[@]}" send-keys -t "$SESSION" -l "Say hello."
"${T[@]}" send-keys -t "$SESSION" Enter
wait_for "first token" 150 "the answer streamed and its stats line shows"
if screen | grep -qF "finish: cancelled"; then
  echo "FAILED: the reply was cancelled" >&2; screen >&2; exit 1
fi

# the reply is over when the footer's esc entry is no longer "cancel reply" (the stats line
# can be drawn a moment before): an esc before that would cancel, not leave the box
for ((i = 0; i < 100; i++)); do screen | tail -1 | grep -qF "typing: message" && break; sleep 0.1; done
"${T[@]}" send-keys -t "$SESSION" Escape
for ((i = 0; i < 50; i++)); do screen | tail -1 | grep -qF "typing:" || break; sleep 0.1; done
if screen | tail -1 | grep -qF "typing:"; then
  echo "FAILED: esc did not leave the message box; the screen:" >&2; screen >&2; exit 1
fi
echo "ok: esc: the keys are commands again (no 'typing:' in the footer)"
"${T[@]}" send-keys -t "$SESSION" x
wait_for "smollm2 stopped" 30 "x: a toast says smollm2 stopped"
wait_row "stopped" 30 "x: smollm2 stopped"

"${T[@]}" send-keys -t "$SESSION" q
wait_for "LLMDECK-EXITED-0" 15 "q: llmdeck quit with exit status 0"
echo "tmux e2e passed"
