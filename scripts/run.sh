#!/usr/bin/env bash
# Start web (gunicorn), the Celery workers and Celery beat on the embedded default; stop them all on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# Cheap evaluators and rescoring jobs; every kind of call to someone else's server (the LLM judge, probe targets,
# notification receivers) gets its own worker, so a slow endpoint delays only its own kind (docs/security.md).
"$VENV/bin/celery" -A sre4ai_web --quiet worker -n main@%h -Q celery,scoring,backfill --loglevel=WARNING \
  --concurrency=2 &
pids+=($!)
"$VENV/bin/celery" -A sre4ai_web --quiet worker -n judge@%h -Q judge --pool threads --concurrency=4 \
  --loglevel=WARNING &
pids+=($!)
"$VENV/bin/celery" -A sre4ai_web --quiet worker -n probes@%h -Q probes --pool threads --concurrency=2 \
  --loglevel=WARNING &
pids+=($!)
"$VENV/bin/celery" -A sre4ai_web --quiet worker -n notify@%h -Q notify --pool threads --concurrency=2 \
  --loglevel=WARNING &
pids+=($!)
# Scores sent to OpenTelemetry collectors (docs/scoring.md): the server's default or a project's own, set in Settings.
"$VENV/bin/celery" -A sre4ai_web --quiet worker -n export@%h -Q export --pool threads --concurrency=2 \
  --loglevel=WARNING &
pids+=($!)
# Exactly one beat: the schedule, including the sweeps that send again the jobs whose worker died or whose message
# was lost (they run on the main worker; docs/operations.md has the queues, time limits and recovery settings).
"$VENV/bin/celery" -A sre4ai_web --quiet beat --loglevel=WARNING &
pids+=($!)
"$VENV/bin/gunicorn" sre4ai_web.wsgi:application --bind "$HOST:$PORT" --workers 3 --threads 4 \
  --log-level warning &
web=$!
pids+=($web)

# Announce the URL only once the web server answers.
for _ in $(seq 1 60); do
  if ! kill -0 "$web" 2>/dev/null; then
    echo "The web server did not start (is port $PORT taken? try PORT=8001 make run)." >&2
    exit 1
  fi
  "$VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://$HOST:$PORT/login/', timeout=1)" \
    2>/dev/null && break
  sleep 0.5
done
cat <<MSG

  sre4ai is running:  http://$HOST:$PORT/
  log in as:          demo / ${SRE4AI_DEMO_PASSWORD:-sre4ai-demo}
  API docs:           http://$HOST:$PORT/api/docs/
  Stop with Ctrl-C.

MSG
wait -n "${pids[@]}"
