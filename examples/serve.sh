#!/bin/sh
# Start one example service under opentelemetry-instrument; SERVICE picks which.
# The Dockerfile's default command; also works from a checkout with the venv on PATH.
set -eu

service="${SERVICE:-orders_fastapi}"
host="${HOST:-0.0.0.0}"
here="$(cd "$(dirname "$0")" && pwd)"

case "$service" in
  orders_fastapi)
    cd "$here/orders_fastapi"
    export OTEL_SERVICE_NAME="${OTEL_SERVICE_NAME:-orders}"
    # uvicorn takes its worker count from WEB_CONCURRENCY (default 1).
    exec opentelemetry-instrument uvicorn app:app --host "$host" --port "${PORT:-8001}"
    ;;
  inventory_flask)
    cd "$here/inventory_flask"
    export OTEL_SERVICE_NAME="${OTEL_SERVICE_NAME:-inventory}"
    # gunicorn takes its worker count from WEB_CONCURRENCY too; default 2 to show pre-fork workers.
    exec opentelemetry-instrument gunicorn app:app --bind "$host:${PORT:-8002}" \
      --workers "${WEB_CONCURRENCY:-2}" --access-logfile -
    ;;
  *)
    echo "serve.sh: unknown SERVICE '$service' (expected orders_fastapi or inventory_flask)" >&2
    exit 2
    ;;
esac
