#!/usr/bin/env bash
# Forward-auth throughput for a cached key, directly and through nginx (examples/nginx/pgusers.conf,
# only addresses substituted), next to GET /healthz, in one run at 64 connections.
#
#   bench/nginx_auth.sh DAEMON_ADDR SESSION_KEY      e.g. bench/nginx_auth.sh 127.0.0.1:8080 "$KEY"
#
# Env: BENCH_DURATION (default 10s), BENCH_CONNECTIONS (64), BENCH_THREADS (2).
set -euo pipefail
daemon=${1:?daemon address host:port}
key=${2:?a valid session key}
duration=${BENCH_DURATION:-10s}
conns=${BENCH_CONNECTIONS:-64}
threads=${BENCH_THREADS:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
command -v nginx >/dev/null || { echo "nginx is not installed (apt-get install nginx)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'kill "$(cat "$tmp/nginx.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$tmp"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
proxy_port=$(free_port)
app_port=$(free_port)
sed -e "s/127.0.0.1:8080/$daemon/g" -e "s/127.0.0.1:3000/127.0.0.1:$app_port/g" \
    -e "s/127.0.0.1:8000/127.0.0.1:$proxy_port/g" "$here/examples/nginx/pgusers.conf" > "$tmp/pgusers.conf"
cat > "$tmp/nginx.conf" <<CONF
worker_processes auto;
daemon on;
pid $tmp/nginx.pid;
error_log $tmp/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $tmp/body; proxy_temp_path $tmp/proxy; fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi; scgi_temp_path $tmp/scgi;
    include $tmp/pgusers.conf;
    # The protected application: a static answer, so the figure is the auth round trip.
    server { listen 127.0.0.1:$app_port; location / { return 200 "ok\n"; } }
}
CONF
nginx -p "$tmp" -c "$tmp/nginx.conf"
sleep 0.5

run() { # name url [header]
  local name=$1 url=$2; shift 2
  local out
  out=$(wrk -t"$threads" -c"$conns" -d"$duration" --latency "$@" "$url")
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out"); non2xx=${non2xx:-0}
  printf '%-32s %12s %10s %10s %8s\n' "$name" "$rps" "$p50" "$p99" "$non2xx"
}
printf '%-32s %12s %10s %10s %8s\n' scenario "req/s" p50 p99 non-2xx
run "GET /healthz (direct)" "http://$daemon/healthz"
run "GET /v1/auth (direct, cached)" "http://$daemon/v1/auth" -H "Authorization: Bearer $key"
run "GET / through nginx auth_request" "http://127.0.0.1:$proxy_port/" -H "Authorization: Bearer $key"
run "GET / nginx, no auth (static)" "http://127.0.0.1:$app_port/"
