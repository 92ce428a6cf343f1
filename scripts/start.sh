#!/usr/bin/env bash
# Starts the whole system in the background: the stack (RabbitMQ, FerretDB, Dovecot) and every service.
# Logs: .run/logs/<name>.log   Stop: scripts/stop.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export MAILSS_STACK=live  # the tests have a stack of their own (scripts/test.sh)
scripts/stack.sh up
scripts/python.sh
mapfile -t SERVICES < <(.venv/bin/python -m shared.registry)  # "<name> <module>" per service (shared/registry.py)
scripts/secrets.sh
eval "$(scripts/stack.sh env)"
# A broker user per service, client and the health check, least privilege (shared/broker_access.py).
.venv/bin/python -m shared.broker_access provision
HEALTH_AMQP_URL=$(.venv/bin/python -m shared.broker_access url health)
mkdir -p .run/pids .run/logs

running() { [ -f ".run/pids/svc-$1.pid" ] && kill -0 "$(cat ".run/pids/svc-$1.pid")" 2>/dev/null; }

# Copy workers scale out: each is a whole copyjob process (its work queues are shared).
COPY_WORKERS=${COPY_WORKERS:-2}

start_instance() {
  local name=$1 instance=$2
  if running "$instance"; then echo "$instance: already running (pid $(cat ".run/pids/svc-$instance.pid"))"; return; fi
  # shared.launch gives the service only the secrets the registry lists for it, then becomes it.
  INSTANCE=$instance nohup .venv/bin/python -m shared.launch "$name" >>".run/logs/$instance.log" 2>&1 &
  echo $! >".run/pids/svc-$instance.pid"
  echo "$instance: started (pid $!)"
}

start_service() {
  local name=$1 n
  if [ "$name" = copyjob ]; then
    for n in $(seq 1 "$COPY_WORKERS"); do start_instance "$name" "$name-$n"; done
  else
    start_instance "$name" "$name"
  fi
}

# A service is ready when its own health check passes (consumers, broker, database).
wait_ready() {
  local name=$1 deadline=$((SECONDS + 60))
  local first=$name
  [ "$name" = copyjob ] && first=copyjob-1
  until INSTANCE=$first AMQP_URL=$HEALTH_AMQP_URL .venv/bin/python -m shared.health "$name" >/dev/null 2>&1; do
    if ! running "$first" || [ $SECONDS -ge $deadline ]; then
      echo "$name did not become ready; last log lines:" >&2; tail -n 30 ".run/logs/$first.log" >&2; exit 1
    fi
    sleep 0.5
  done
}

# The web panel answers its own health check over HTTP (shared/registry.py FRONTS).
panel_ready() {
  local deadline=$((SECONDS + 60))
  until .venv/bin/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
      "http://127.0.0.1:$GATEWAY_PORT/healthz" 2>/dev/null; do
    if ! running gateway || [ $SECONDS -ge $deadline ]; then
      echo "gateway did not become ready; last log lines:" >&2; tail -n 30 .run/logs/gateway.log >&2; exit 1
    fi
    sleep 0.5
  done
}

for entry in "${SERVICES[@]}"; do start_service $entry; done
for entry in "${SERVICES[@]}"; do wait_ready ${entry%% *}; done
start_instance gateway gateway
panel_ready
cat <<MSG

Mail Self-Service is running.
  web panel     : http://127.0.0.1:$GATEWAY_PORT/   (Japanese; English by the switch at the top)
  services logs : .run/logs/<service>.log     stack logs: .run/logs/
  admin login   : $(sed -n 's/^BOOTSTRAP_ADMIN_LOGIN=//p' .run/secrets/services.env)  (password: grep BOOTSTRAP_ADMIN_PASSWORD .run/secrets/services.env)
  mailctl       : .venv/bin/mailctl --help
  IMAP          : 127.0.0.1:$DOVECOT_IMAP_PORT
  stop          : scripts/stop.sh
MSG
