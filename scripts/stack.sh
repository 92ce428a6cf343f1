#!/usr/bin/env bash
# Local stack for Mail Self-Service: RabbitMQ, FerretDB, a private Dovecot, SpamAssassin
# (spamd + spamass-milter), an SPF milter (pyspf-milter) and a private Postfix.
#
#   scripts/stack.sh up|down|status|env
#   scripts/stack.sh start|stop|restart rabbitmq|ferretdb|dovecot|spamassassin|spf|postsrsd|postfix
#
# Debian 12, run as root, no systemd, no Docker. Everything the scripts start is
# recorded under .run/pids so `down` stops only that, never a service someone
# else started. Runtime state lives in .run/ (gitignored).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Two stacks live side by side, each with its own run folder, ports and instances of every
# component: `live` (scripts/start.sh, the system a person uses) and `test` (scripts/test.sh).
# Nothing of one reaches the other; MAILSS_STACK picks one (default: live).
STACK=${MAILSS_STACK:-live}
case $STACK in
  live) RUN=$REPO/.run PORT_SHIFT=0 AMQP_PORT=5672 MANAGEMENT_PORT=15672 ;;
  test) RUN=$REPO/.run/test PORT_SHIFT=10000 AMQP_PORT=5673 MANAGEMENT_PORT=15673 ;;
  *) echo "stack: error: MAILSS_STACK is '$STACK'; it is live or test" >&2; exit 2 ;;
esac
port() { echo $(($1 + PORT_SHIFT)); }
# RabbitMQ's Erlang distribution listens on the AMQP port + 20000.
DIST_PORT=$((AMQP_PORT + 20000))
# The live node keeps the name and data folder Debian's broker had (what earlier versions of this
# script ran), so a machine's queued messages carry over; the test node is new and all in .run/test.
if [[ $STACK == live ]]; then
  RABBITMQ_NODE=rabbit@$(hostname -s) RABBITMQ_DATA=/var/lib/rabbitmq/mnesia
else
  RABBITMQ_NODE=mailss-test@$(hostname -s) RABBITMQ_DATA=$RUN/rabbitmq/mnesia
fi

PIDS=$RUN/pids
LOGS=$RUN/logs
SECRETS=$RUN/secrets
DOVECOT_DIR=$RUN/dovecot
DOVECOT_CONF=$DOVECOT_DIR/dovecot.conf
IMAP_PORT=$(port 10143)
MASTER_PASSWORD_FILE=$SECRETS/dovecot-master-password
MASTER_USER=mailsvc
# The notifier's SMTP AUTH login on Postfix's submission listener (Dovecot checks it).
SUBMIT_USER=notifier
SUBMIT_PASSWORD_FILE=$SECRETS/notifier-smtp-password
POLICY_KEY_FILE=$SECRETS/mail-policy-api-key
POLICY_NONCE_FILE=$SECRETS/mail-policy-hash-nonce
POLICY_PORT=$(port 10180)

BROKER_SECRETS=$SECRETS/broker
BROKER_ADMIN=mailss-admin
# FerretDB listens on a Unix socket only, in a folder only the services' group enters: its SQLite
# backend has no real authentication, so on TCP any local user could rewrite any document.
DB_SOCKET_DIR=$RUN/db
FERRETDB_SOCKET=$DB_SOCKET_DIR/ferretdb.sock
FERRETDB_URL="mongodb://${FERRETDB_SOCKET//\//%2F}/?retryWrites=false"
FERRETDB_VERSION=v1.24.2
FERRETDB_MODULE=github.com/FerretDB/FerretDB
# Used only when the machine's Go cannot build FerretDB (its go.mod asks for 1.24).
FALLBACK_GOTOOLCHAIN=go1.24.3
APT_PACKAGES=(procps iproute2 rabbitmq-server dovecot-imapd dovecot-lmtpd dovecot-sieve dovecot-managesieved
  postfix postfix-lmdb spamassassin spamd spamc spamass-milter postsrsd pyspf-milter dnsmasq-base python3)
POSTFIX_DIR=$RUN/postfix
POSTFIX_CONF=$POSTFIX_DIR/etc
POSTFIX_PORT=$(port 10587)
SPAMD_PORT=$(port 10784)
# The largest message SpamAssassin checks (spamc's -s; its default is 500 KB). A larger one is
# delivered unchecked, and Sieve then neither forwards nor autoreplies it (no verdict header):
# spam is small, and checking attachments costs seconds of the two cores per message.
SPAM_CHECK_MAX_BYTES=1048576
MILTER_PORT=$(port 10783)
SPF_DIR=$RUN/spf
SPF_SOCKET=$SPF_DIR/milter.sock
MAP_PORT=$(port 10181)
SUBMIT_PORT=$(port 10589)
SRS_FORWARD_PORT=$(port 10785)
SRS_REVERSE_PORT=$(port 10786)
SRS_SECRET_FILE=$SECRETS/srs-secret
# Forwarded copies leave with SRS senders at this domain, and bounces to it come back here.
SRS_DOMAIN=${MAILSS_SRS_DOMAIN:-srs.mailss.localhost}
# Internal: the forwarding addresses Sieve redirects to (never reachable from the world).
FORWARD_DOMAIN=forward.mailss.invalid
FORWARD_MAP=$POSTFIX_DIR/maps/forwards
# Where mail for the outside world goes. The test stack's is the tests' SMTP sink; the live
# stack's is a port of its own (nothing listens there unless MAILSS_RELAYHOST names a real relay:
# outside mail waits in its queue), so neither stack's mail ever reaches the other.
SINK_PORT=$(port 10025)
GATEWAY_PORT=$(port 10080)  # the web panel (services/gateway), started by scripts/start.sh or the tests
RELAYHOST=${MAILSS_RELAYHOST:-[127.0.0.1]:$SINK_PORT}
START_TIMEOUT=${STACK_START_TIMEOUT:-90}
# Every service runs as its own user, mailss-<name> (shared/registry.py: tests/shared check both agree).
SERVICE_USERS=(account rules copyjob notifier gateway)

# Go from go.dev's tarball is not on PATH in non-login shells.
[[ -d /usr/local/go/bin ]] && PATH=$PATH:/usr/local/go/bin

say() { printf 'stack: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# ---------------------------------------------------------------- helpers

pid_of() { cat "$PIDS/$1.pid" 2>/dev/null || true; }

# True when the process recorded for component $1 is alive.
running() {
  local pid
  pid=$(pid_of "$1")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

port_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# A port this stack is about to listen on must be free: one held by anything this stack did not
# start (the other stack, another checkout, a system service) is refused, never shared.
claim_port() {
  local port=$1 what=$2 holder
  port_open 127.0.0.1 "$port" || return 0
  holder=$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'users:((.*))' | head -n 1)
  die "127.0.0.1:$port, for $what of the $STACK stack, is already held by ${holder:-another process}," \
    "which this stack did not start. Stop that (scripts/stop.sh in its checkout), or free the port."
}

# Exit status of a readiness check whose process is gone: no point waiting.
DIED=99

log_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

# wait_for SECONDS WHAT LOGFILE FROM COMMAND...: poll COMMAND until it succeeds.
# On failure show what this start wrote to LOGFILE after byte FROM.
wait_for() {
  local seconds=$1 what=$2 log=$3 from=$4
  shift 4
  local deadline=$((SECONDS + seconds)) rc
  while :; do
    rc=0
    "$@" >/dev/null 2>&1 || rc=$?
    ((rc == 0)) && return 0
    if ((rc == DIED)); then
      say "error: $what exited while starting"
    elif ((SECONDS >= deadline)); then
      say "error: $what not ready after ${seconds}s"
    else
      sleep 0.5
      continue
    fi
    show_start_log "$log" "$from"
    return 1
  done
}

# The reason is usually the first error (RabbitMQ follows it with pages of
# crash report) or the very end (FerretDB, Dovecot).
show_start_log() {
  say "first errors in $1 since this start:"
  tail -c +"$(($2 + 1))" "$1" 2>/dev/null | grep -m 10 -iE 'error|fatal|panic' >&2 || true
  say "last lines of $1:"
  tail -c +"$(($2 + 1))" "$1" 2>/dev/null | tail -n 15 >&2 || true
}

# wait_gone SECONDS PID: a stop is only done when the process is gone.
wait_gone() {
  local deadline=$((SECONDS + $1))
  while kill -0 "$2" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# Install SRC at DEST only when it differs; returns 1 when nothing changed.
install_if_changed() {
  local src=$1 dest=$2
  shift 2
  cmp -s "$src" "$dest" && return 1
  install "$@" "$src" "$dest"
}

# An external MongoDB (CI service, real replica set) replaces FerretDB. After
# `eval "$(stack.sh env)"` MONGODB_URL holds our own FerretDB URL, which must
# not count as external.
external_mongodb() {
  [[ -n ${MONGODB_URL:-} && $MONGODB_URL != "$FERRETDB_URL" ]]
}

# ---------------------------------------------------------------- installation

ensure_apt_packages() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return
  say "installing ${missing[*]}"
  # Postfix's package must not configure (or start) the machine's own instance.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  # A fresh image has empty package lists: update only when the first try fails.
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" ||
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"; }
}

# Each service instance writes its own health report here (sticky: none replaces another's).
prepare_health_dir() {
  mkdir -p "$RUN/health"
  find "$RUN/health" -type f -user root -delete  # from a run as root: in the way of the services' own
  chown root:mailss "$RUN/health"
  chmod 1770 "$RUN/health"
}

system_user() {
  id "$1" >/dev/null 2>&1 && return
  say "creating system user $1"
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$1"
}

system_group() {
  getent group "$1" >/dev/null || { say "creating system group $1"; groupadd --system "$1"; }
}

# vmail owns the mail; every service runs as a user of its own (shared/launch.py becomes it), in the
# group mailss (the database's socket, the health reports). The account service also joins
# mailss-homes, the group of the mail homes it makes and removes (Dovecot's mail_access_groups).
ensure_users() {
  system_user vmail
  system_group mailss
  system_group mailss-homes
  local service
  for service in "${SERVICE_USERS[@]}"; do
    system_user "mailss-$service"
    join_group "mailss-$service" mailss
  done
  join_group mailss-account mailss-homes
  system_user mailss-spf
  # mailss-mail: the services that act in mailboxes through the master user (the copy job, the rules
  # service) may open Dovecot's sockets for them; the master user logs in nowhere else.
  system_group mailss-mail
  join_group mailss-copyjob mailss-mail
  join_group mailss-rules mailss-mail
  # The passwd.d buckets are group dovecot's (Dovecot's auth reads them): the account service reads
  # them too, whoever wrote a bucket last (an operator's run as root), and writes them (its folder).
  join_group mailss-account dovecot
}

join_group() {
  id -nG "$1" | tr ' ' '\n' | grep -qx -- "$2" || usermod -a -G "$2" "$1"
}

# go, retried with a toolchain that FerretDB's go.mod accepts.
go_build_tool() {
  go "$@" || { say "retrying with GOTOOLCHAIN=$FALLBACK_GOTOOLCHAIN"; GOTOOLCHAIN=$FALLBACK_GOTOOLCHAIN go "$@"; }
}

# Named after the patch below, so a machine with an unpatched build gets a new one.
ferretdb_bin() { echo "$(go env GOPATH)/bin/ferretdb-$FERRETDB_VERSION-id-index"; }

# `go install .../cmd/ferretdb@v1.24.2` builds a binary that panics at start:
# the module zip lacks build/version/version.txt (generated from git by the
# project's Taskfile). So build from a copy of the module source with that file.
#
# And one patch: v1.24.2's SQLite backend creates the _id index on
# `_ferretdb_sjson->"_id"` but looks documents up by `_ferretdb_sjson->'$._id'`,
# an expression SQLite does not match to that index, so every find, update and
# delete by _id scanned the whole collection (measured: 25 ms per update at
# 1,000 documents, 1.5 ms with the index used). The lookups are made to use the
# index's own expression.
FERRETDB_ID_LOOKUP_FILE=internal/backends/sqlite/metadata/metadata.go
patch_ferretdb_id_lookup() {
  local file=$1/$FERRETDB_ID_LOOKUP_FILE
  sed -i "s|IDColumn = DefaultColumn + \"->'\$._id'\"|IDColumn = DefaultColumn + \`->\"_id\"\`|" "$file"
  grep -qF 'IDColumn = DefaultColumn + `->"_id"`' "$file" || die "patching FerretDB's _id lookup failed ($file)"
}

ensure_ferretdb_binary() {
  command -v go >/dev/null || die "Go >= 1.21 is needed to build FerretDB (not found on PATH)"
  local bin src work
  bin=$(ferretdb_bin)
  "$bin" --version >/dev/null 2>&1 && return
  say "building FerretDB $FERRETDB_VERSION into $bin (takes a minute)"
  src=$(cd /tmp && go_build_tool mod download -json "$FERRETDB_MODULE@$FERRETDB_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -d $src ]] || die "go mod download of $FERRETDB_MODULE@$FERRETDB_VERSION failed"
  work=$(mktemp -d)
  cp -r "$src/." "$work/"
  chmod -R u+w "$work"
  echo "$FERRETDB_VERSION" >"$work/build/version/version.txt"
  patch_ferretdb_id_lookup "$work"
  mkdir -p "$(dirname "$bin")"
  (cd "$work" && go_build_tool build -buildvcs=false -trimpath -o "$bin" ./cmd/ferretdb) ||
    { rm -rf "$work"; die "building FerretDB failed"; }
  rm -rf "$work"
  "$bin" --version >/dev/null || die "$bin does not run"
}

# ---------------------------------------------------------------- RabbitMQ

# Each stack runs its own node with its config and plugins list in $RUN/rabbitmq, owned by the
# rabbitmq user (/etc/rabbitmq is never used), and its data in RABBITMQ_DATA. The CLI reaches a
# node by name (the shared Erlang cookie of the rabbitmq user).
RABBITMQ_DIR=$RUN/rabbitmq

ctl() { rabbitmqctl -n "$RABBITMQ_NODE" "$@"; }

# Returns 0 when a file changed.
install_rabbitmq_config() {
  mkdir -p "$RABBITMQ_DIR"
  chown rabbitmq:rabbitmq "$RABBITMQ_DIR"
  chmod 750 "$RABBITMQ_DIR"
  local rendered changed=1 f
  rendered=$(mktemp)
  sed -e "s|@AMQP_PORT@|$AMQP_PORT|g" -e "s|@MANAGEMENT_PORT@|$MANAGEMENT_PORT|g" \
    "$REPO/deploy/rabbitmq/rabbitmq.conf.in" >"$rendered"
  install_if_changed "$rendered" "$RABBITMQ_DIR/rabbitmq.conf" -o rabbitmq -g rabbitmq -m 640 && changed=0
  rm -f "$rendered"
  for f in rabbitmq-env.conf enabled_plugins; do
    install_if_changed "$REPO/deploy/rabbitmq/$f" "$RABBITMQ_DIR/$f" -o rabbitmq -g rabbitmq -m 640 && changed=0
  done
  return $changed
}

# await_startup fails at once while the node is not registered yet, so it is polled.
rabbitmq_started() {
  running rabbitmq-launcher || return "$DIED"
  ctl -q await_startup --timeout 5
}

start_rabbitmq() {
  if install_rabbitmq_config && running rabbitmq; then
    say "RabbitMQ config changed: restarting it"
    stop_rabbitmq
  fi
  running rabbitmq && return
  claim_port "$AMQP_PORT" "RabbitMQ (AMQP)"
  claim_port "$MANAGEMENT_PORT" "RabbitMQ (management)"
  claim_port "$DIST_PORT" "RabbitMQ (Erlang distribution)"
  ensure_epmd
  say "starting RabbitMQ ($RABBITMQ_NODE)"
  local from
  from=$(log_size "$LOGS/rabbitmq.log")
  # In the foreground, under setsid: a node that cannot boot (e.g. a bad rabbitmq.conf) says why
  # on its console, which is our log. As the rabbitmq user, with a clean environment naming only
  # this stack's node and files.
  # 9>&-: a long-lived child holding the lock fd would block every later stack.sh.
  setsid runuser -u rabbitmq -- env -i HOME=/var/lib/rabbitmq PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    RABBITMQ_NODENAME="$RABBITMQ_NODE" RABBITMQ_CONF_ENV_FILE="$RABBITMQ_DIR/rabbitmq-env.conf" \
    RABBITMQ_CONFIG_FILE="$RABBITMQ_DIR/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$RABBITMQ_DIR/enabled_plugins" \
    RABBITMQ_MNESIA_BASE="$RABBITMQ_DATA" RABBITMQ_LOG_BASE="$RABBITMQ_DIR/log" \
    RABBITMQ_PID_FILE="$RABBITMQ_DIR/node.pid" RABBITMQ_DIST_PORT="$DIST_PORT" \
    /usr/lib/rabbitmq/bin/rabbitmq-server </dev/null >>"$LOGS/rabbitmq.log" 2>&1 9>&- &
  echo $! >"$PIDS/rabbitmq-launcher.pid"
  wait_for "$START_TIMEOUT" RabbitMQ "$LOGS/rabbitmq.log" "$from" rabbitmq_started
  # The node's own pid is our marker that this script started it.
  ctl -q eval 'os:getpid().' | tr -d '"' >"$PIDS/rabbitmq.pid"
}

# The operator's broker user (administrator), whose password is only in its secret file; `guest`
# goes. Each process gets its own user (shared/broker_access.py, with this one). Passwords reach
# rabbitmqctl on stdin, never on a command line.
ensure_broker_admin() {
  local file=$BROKER_SECRETS/$BROKER_ADMIN
  mkdir -p "$BROKER_SECRETS"
  chmod 700 "$SECRETS" "$BROKER_SECRETS"
  [[ -s $file ]] || (umask 077 && random_secret >"$file")
  if ! ctl -q authenticate_user "$BROKER_ADMIN" <"$file" >/dev/null 2>&1; then
    say "setting up the broker's admin user"
    ctl -q add_user "$BROKER_ADMIN" <"$file" >/dev/null 2>&1 ||
      ctl -q change_password "$BROKER_ADMIN" <"$file" >/dev/null
    ctl -q set_user_tags "$BROKER_ADMIN" administrator
    ctl -q set_permissions -p / "$BROKER_ADMIN" '.*' '.*' '.*'
  fi
  if ctl -q list_users | grep -q '^guest[[:space:]]'; then
    say "deleting the broker's guest user"
    ctl -q delete_user guest
  fi
}

stop_rabbitmq() {
  if running rabbitmq; then
    say "stopping RabbitMQ"
    local pid
    pid=$(pid_of rabbitmq)
    ctl -q stop || true
    wait_gone 60 "$pid" || die "RabbitMQ (pid $pid) did not stop"
  fi
  rm -f "$PIDS/rabbitmq.pid" "$PIDS/rabbitmq-launcher.pid"
  stop_epmd
}

# A folder only its owner enters, with every file in it private too (also ones from before).
private_dir() {
  mkdir -p "$1"
  chmod 700 "$1"
  find "$1" -type d -exec chmod 700 {} + -o -type f -exec chmod 600 {} +
}

# epmd serves every node of the machine, and whoever starts it decides where it listens: the node
# would on loopback (rabbitmq-env.conf), but the rabbitmqctl polling its start-up starts one first when
# none runs, on every address (seen on a fresh machine). So it is started here, on loopback, first.
ensure_epmd() {
  pgrep -x epmd >/dev/null && return 0
  runuser -u rabbitmq -- env -i PATH=/usr/bin:/bin HOME=/var/lib/rabbitmq ERL_EPMD_ADDRESS=127.0.0.1 epmd -daemon
}

# epmd outlives the node, and any rabbitmqctl starts one when none runs. Once our node is gone,
# an epmd with no node registered serves nobody: end it (one that still has nodes is left alone).
stop_epmd() {
  pgrep -x epmd >/dev/null || return 0
  if epmd -names 2>/dev/null | grep -q '^name '; then
    say "epmd still has Erlang nodes registered; leaving it"
    return 0
  fi
  epmd -kill >/dev/null 2>&1 || true
  local deadline=$((SECONDS + 10))
  while pgrep -x epmd >/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
}

# ---------------------------------------------------------------- FerretDB

# A real MongoDB ping (OP_MSG {ping: 1}), stdlib only: the port opens before
# the SQLite backend is usable. Without python3 an open port has to do.
ferretdb_ready() {
  command -v python3 >/dev/null || { [[ -S $FERRETDB_SOCKET ]]; return; }
  FERRETDB_SOCKET=$FERRETDB_SOCKET python3 - <<'EOF'
import os
import socket, struct, sys
elements = b"\x10ping\x00" + struct.pack("<i", 1) + b"\x02$db\x00" + struct.pack("<i", 6) + b"admin\x00"
doc = struct.pack("<i", len(elements) + 5) + elements + b"\x00"
body = struct.pack("<I", 0) + b"\x00" + doc
with socket.socket(socket.AF_UNIX) as s:
    s.settimeout(2)
    s.connect(os.environ["FERRETDB_SOCKET"])
    s.sendall(struct.pack("<iiii", 16 + len(body), 1, 0, 2013) + body)
    reply = s.recv(65536)
sys.exit(0 if b"\x01ok\x00" + struct.pack("<d", 1.0) in reply else 1)
EOF
}

start_ferretdb() {
  external_mongodb && { say "MONGODB_URL is set: using it, not starting FerretDB"; return; }
  private_dir "$RUN/ferretdb"
  running ferretdb && return
  ensure_ferretdb_binary
  mkdir -p "$RUN/ferretdb/state" "$DB_SOCKET_DIR"
  chown root:mailss "$DB_SOCKET_DIR"
  chmod 750 "$DB_SOCKET_DIR"
  rm -f "$FERRETDB_SOCKET"  # left by a FerretDB that was killed
  say "starting FerretDB"
  local from
  from=$(log_size "$LOGS/ferretdb.log")
  # --telemetry=disable always: otherwise it calls out to beacon.ferretdb.com.
  # setsid: survive the caller's process group being killed (CI job, test).
  # synchronous(NORMAL) in WAL mode: a commit survives a crash of any process, and like
  # MongoDB's default write concern (acknowledged before its 100 ms journal flush) it may
  # lose the last moments on power loss; FULL would fsync every write (about +0.5 ms each).
  # umask 077: the SQLite files hold the argon2 hashes; no other local user reads them.
  local umask_before
  umask_before=$(umask)
  umask 077
  setsid "$(ferretdb_bin)" --handler=sqlite --sqlite-url="file:$RUN/ferretdb/?_pragma=synchronous(NORMAL)" \
    --state-dir="$RUN/ferretdb/state" --listen-addr= --listen-unix="$FERRETDB_SOCKET" \
    --debug-addr=- --telemetry=disable \
    </dev/null >>"$LOGS/ferretdb.log" 2>&1 9>&- &
  echo $! >"$PIDS/ferretdb.pid"
  umask "$umask_before"
  wait_for "$START_TIMEOUT" FerretDB "$LOGS/ferretdb.log" "$from" ferretdb_started
  chgrp mailss "$FERRETDB_SOCKET"
  chmod 660 "$FERRETDB_SOCKET"
}

ferretdb_started() {
  running ferretdb || return "$DIED"
  ferretdb_ready
}

stop_ferretdb() {
  running ferretdb || { rm -f "$PIDS/ferretdb.pid"; return; }
  say "stopping FerretDB"
  local pid
  pid=$(pid_of ferretdb)
  kill "$pid"
  wait_gone 30 "$pid" || { kill -9 "$pid" 2>/dev/null || true; }
  rm -f "$PIDS/ferretdb.pid"
}

# ---------------------------------------------------------------- Dovecot

# Dovecot writes its own pid file in base_dir; that instance is ours by
# construction, so it is the source of truth (.run/pids/dovecot.pid is a copy).
dovecot_master_pid() { cat "$DOVECOT_DIR/base/master.pid" 2>/dev/null || true; }

dovecot_running() {
  local pid
  pid=$(dovecot_master_pid)
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

# passwd_file LOGIN SECRET_FILE USERS_FILE: the one-line passwd-file Dovecot checks LOGIN against.
# The password is made once (32 random characters); its hash is refreshed whenever the secret file
# is newer (someone rotated it by hand). A fast salted hash: no dictionary to guess from, and our
# services log in with it often (argon2 would add ~100 ms each). doveadm pw reads the password twice
# from stdin: it stays out of `ps`.
# Only Dovecot's auth (user dovecot) reads it: the group dovecot also has the account service (which
# reads the passwd.d buckets it writes).
# passwd_file LOGIN SECRET USERS [EXTRA]: EXTRA, the line's extra fields (Dovecot passwd-file).
passwd_file() {
  local login=$1 secret=$2 users=$3 extra=${4:-} pw hash
  [[ -s $secret ]] || (umask 077 && random_secret >"$secret")
  chmod 600 "$secret"
  if ! [[ -s $users && $users -nt $secret ]] || ! grep -q "^$login:{SHA512-CRYPT}.*:$extra\$" "$users"; then
    pw=$(<"$secret")
    hash=$(printf '%s\n%s\n' "$pw" "$pw" | doveadm pw -s SHA512-CRYPT)
    (umask 077 && echo "$login:$hash::::::$extra" >"$users.tmp")
    mv -f "$users.tmp" "$users"
  fi
  chown dovecot:root "$users"
  chmod 400 "$users"
}

random_secret() { head -c 48 /dev/urandom | base64 | tr -d '+/=\n' | cut -c 1-32; }

# Dovecot asks the account service before each mail login (the guessing limit): the API key
# both share and the nonce of Dovecot's password fingerprints, generated once.
write_policy_conf() {
  local file
  for file in "$POLICY_KEY_FILE" "$POLICY_NONCE_FILE"; do
    [[ -s $file ]] || (umask 077 && random_secret >"$file")
  done
  (umask 077 && printf '%s\n' \
    "auth_policy_server_url = http://127.0.0.1:$POLICY_PORT/" \
    "auth_policy_server_api_header = X-API-Key:$(<"$POLICY_KEY_FILE")" \
    "auth_policy_hash_nonce = $(<"$POLICY_NONCE_FILE")" >"$DOVECOT_DIR/policy.conf.tmp")
  mv -f "$DOVECOT_DIR/policy.conf.tmp" "$DOVECOT_DIR/policy.conf"
}

# Ownership is what lets each process in, and no one else: Dovecot's auth runs as `dovecot` and reads
# passwd.d through the group, which only the account service writes; mail is delivered and read as
# vmail in homes of the group mailss-homes (the account service makes and removes them).
prepare_dovecot_instance() {
  mkdir -p "$DOVECOT_DIR"/{passwd.d,mail,state} "$SECRETS"
  chmod 755 "$RUN" "$DOVECOT_DIR"
  chmod 700 "$SECRETS"
  chown mailss-account:dovecot "$DOVECOT_DIR/passwd.d"
  chmod 2750 "$DOVECOT_DIR/passwd.d"
  chown vmail:mailss-homes "$DOVECOT_DIR/mail"
  chmod 2770 "$DOVECOT_DIR/mail"
  migrate_mail_homes
  # The master user logs in only through the services' sockets (no IP: `local`), which only the
  # group mailss-mail may open: no other local user can even try its password.
  passwd_file "$MASTER_USER" "$MASTER_PASSWORD_FILE" "$DOVECOT_DIR/master-users" allow_nets=local
  mkdir -p "$DOVECOT_DIR/services"
  chown root:mailss-mail "$DOVECOT_DIR/services"
  chmod 750 "$DOVECOT_DIR/services"
  passwd_file "$SUBMIT_USER" "$SUBMIT_PASSWORD_FILE" "$DOVECOT_DIR/submit-users"
  install_outbound_meter
  write_policy_conf
  local rendered
  rendered=$(mktemp)
  sed -e "s|@RUN@|$DOVECOT_DIR|g" -e "s|@IMAP_PORT@|$IMAP_PORT|g" \
    -e "s|@SIEVE_SUBMISSION@|sendmail_path = /usr/sbin/sendmail -C $POSTFIX_CONF|g" \
    -e "s|@INSTANCE@|mailss-$STACK|g" "$REPO/deploy/dovecot/dovecot.conf.in" >"$rendered"
  if install_if_changed "$rendered" "$DOVECOT_CONF" -m 644 && dovecot_running; then
    say "Dovecot config changed: reloading"
    doveadm -c "$DOVECOT_CONF" reload
  fi
  rm -f "$rendered"
}

# Sieve asks the outbound meter before each forward and autoreply (vnd.dovecot.execute, as vmail): the
# program (Debian's /usr/bin/python3, standard library only), root's and read-only, is the only one in sieve-execute/; its counts go to outbound/, the
# mail user's, which the rules service reads (GetRules) through the group mailss-mail.
install_outbound_meter() {
  mkdir -p "$DOVECOT_DIR/sieve-execute" "$DOVECOT_DIR/outbound"
  local meter=$DOVECOT_DIR/sieve-execute/mailss-outbound
  cmp -s "$REPO/services/rules/adapters/outbound_meter.py" "$meter" ||
    install -m 755 "$REPO/services/rules/adapters/outbound_meter.py" "$meter"
  chown vmail:mailss-mail "$DOVECOT_DIR/outbound"
  chmod 2750 "$DOVECOT_DIR/outbound"
}

# Homes made before the account service made them (vmail's, 0700) join the group mailss-homes with
# its access, setgid, as the account service makes them now: once, behind a marker (homes number in
# the hundred thousands; a walk of them on every start would cost minutes).
migrate_mail_homes() {
  local marker=$DOVECOT_DIR/.homes-group-v1 mail=$DOVECOT_DIR/mail
  [[ -e $marker ]] && return
  if [[ -n $(find "$mail" -mindepth 1 -maxdepth 1 -print -quit) ]]; then
    say "giving the existing mail homes the group mailss-homes (once)"
    chgrp -R mailss-homes "$mail"
    chmod -R g=u "$mail"
    find "$mail" -type d -exec chmod g+s {} +
  fi
  # The passwd.d buckets were root's: the account service replaces them (the folder is its own).
  touch "$marker"
}

# Ready when every listener answers: IMAP greets, LMTP's and the services' sockets are there.
dovecot_ready() {
  imap_greets && [[ -S $DOVECOT_DIR/base/lmtp && -S $DOVECOT_DIR/services/imap && -S $DOVECOT_DIR/services/sieve ]]
}

imap_greets() (
  local greeting
  exec 3<>"/dev/tcp/127.0.0.1/$IMAP_PORT"
  read -r -t 2 greeting <&3
  [[ $greeting == '* OK'* ]]
)

start_dovecot() {
  prepare_dovecot_instance
  local from
  from=$(log_size "$LOGS/dovecot.log")
  if ! dovecot_running; then
    claim_port "$IMAP_PORT" "Dovecot (IMAP)"
    say "starting Dovecot"
    rm -f "$DOVECOT_DIR/base/master.pid"  # a killed instance's: the new daemon writes its own a moment after
    # dovecot -c checks the config and exits non-zero with the reason on stderr;
    # its daemon must not keep the caller's stdio (a piped `start.sh | tee` would never end).
    dovecot -c "$DOVECOT_CONF" </dev/null >>"$LOGS/dovecot.log" 2>&1 9>&- ||
      die "Dovecot refused to start: $(tail -n 5 "$LOGS/dovecot.log")"
  fi
  wait_for "$START_TIMEOUT" Dovecot "$LOGS/dovecot.log" "$from" dovecot_started
  dovecot_master_pid >"$PIDS/dovecot.pid"
}

dovecot_started() {
  [[ -s $DOVECOT_DIR/base/master.pid ]] || return 1  # the daemon has not written it yet
  dovecot_running || return "$DIED"
  dovecot_ready
}

stop_dovecot() {
  rm -f "$PIDS/dovecot.pid"
  dovecot_running || return 0
  say "stopping Dovecot"
  local pid
  pid=$(dovecot_master_pid)
  doveadm -c "$DOVECOT_CONF" stop || kill "$pid" 2>/dev/null || true
  wait_gone 30 "$pid" || die "Dovecot (pid $pid) did not stop"
}

# ---------------------------------------------------------------- SpamAssassin

# spamd with local tests only (-L: no network lookups) and few children (2 cores); the milter
# Postfix calls hands each message to it (spamc's options after `--`).
start_spamassassin() {
  if ! running spamd; then
    claim_port "$SPAMD_PORT" spamd
    say "starting spamd"
    local from
    from=$(log_size "$LOGS/spamd.log")
    rm -f "$PIDS/spamd.pid"
    spamd --listen="127.0.0.1:$SPAMD_PORT" -u debian-spamd -L --min-children=1 --max-children=2 \
      -d --pidfile="$PIDS/spamd.pid" -s "$LOGS/spamd.log" </dev/null 9>&-
    wait_for "$START_TIMEOUT" spamd "$LOGS/spamd.log" "$from" port_open 127.0.0.1 "$SPAMD_PORT"
  fi
  if ! running spamass-milter; then
    claim_port "$MILTER_PORT" spamass-milter
    say "starting spamass-milter"
    rm -f "$PIDS/spamass-milter.pid"
    spamass-milter -p "inet:$MILTER_PORT@127.0.0.1" -f -P "$PIDS/spamass-milter.pid" \
      -- -d 127.0.0.1 -p "$SPAMD_PORT" -s "$SPAM_CHECK_MAX_BYTES" </dev/null >>"$LOGS/spamass-milter.log" 2>&1 9>&-
    wait_for 30 spamass-milter "$LOGS/spamass-milter.log" 0 port_open 127.0.0.1 "$MILTER_PORT"
  fi
}

stop_spamassassin() { stop_recorded spamass-milter spamd; }

# stop_recorded NAME...: each process recorded in $PIDS/NAME.pid, TERM then (after 30 s) KILL.
stop_recorded() {
  local name pid
  for name in "$@"; do
    running "$name" || { rm -f "$PIDS/$name.pid"; continue; }
    say "stopping $name"
    pid=$(pid_of "$name")
    kill "$pid" 2>/dev/null || true
    wait_gone 30 "$pid" || kill -9 "$pid" 2>/dev/null || true
    rm -f "$PIDS/$name.pid"
  done
}

# ---------------------------------------------------------------- SPF

# The SPF milter (deploy/spf/pyspf-milter.conf.in) records each message's SPF result for Sieve. Its
# socket is in a folder of the group postfix (setgid), which alone may connect (umask 007). The test
# stack's runs in a network and mount namespace of its own, with a DNS server on its loopback and a
# resolv.conf naming it (deploy/spf/test-dns.conf): the tests' senders get SPF records, and the
# machine's DNS and port 53 are untouched. The other stacks' ask the machine's resolver.
start_spf() {
  running spf-milter && return
  say "starting the SPF milter"
  mkdir -p "$SPF_DIR"
  chown mailss-spf:postfix "$SPF_DIR"
  chmod 2750 "$SPF_DIR"
  rm -f "$SPF_SOCKET" "$PIDS/spf-milter.pid"
  sed -e "s|@SOCKET@|$SPF_SOCKET|g" -e "s|@PIDFILE@|$PIDS/spf-milter.pid|g" -e "s|@USER@|mailss-spf:postfix|g" \
    "$REPO/deploy/spf/pyspf-milter.conf.in" >"$SPF_DIR/pyspf-milter.conf"
  local launch=(pyspf-milter "$SPF_DIR/pyspf-milter.conf")
  if [[ $STACK == test ]]; then
    echo "nameserver 127.0.0.1" >"$SPF_DIR/resolv.conf"
    launch=(unshare --net --mount --fork -- bash -c 'ip link set lo up && mount --bind "$1/resolv.conf" /etc/resolv.conf &&
      { dnsmasq --conf-file="$2" --pid-file="$3" --user=nobody --log-facility=- --keep-in-foreground & } &&
      for _ in {1..50}; do (exec 3<>/dev/tcp/127.0.0.1/53) 2>/dev/null && break; sleep 0.1; done && shift 3 && exec "$@"' \
      spf "$SPF_DIR" "$REPO/deploy/spf/test-dns.conf" "$PIDS/spf-dns.pid" "${launch[@]}")
  fi
  (umask 007 && exec setsid "${launch[@]}") </dev/null >>"$LOGS/spf-milter.log" 2>&1 9>&- &
  wait_for 30 "SPF milter" "$LOGS/spf-milter.log" 0 test -S "$SPF_SOCKET"
}

stop_spf() {
  stop_recorded spf-milter spf-dns
  rm -f "$SPF_SOCKET"
}

# ---------------------------------------------------------------- postsrsd

# SRS for forwarded copies (Postfix's Sieve listener asks the forward port; the reverse port
# turns a bounce to an SRS address back into the original sender). The secret signs the
# addresses: kept across restarts, so bounces to older forwards still find their way.
start_postsrsd() {
  running postsrsd && return
  claim_port "$SRS_FORWARD_PORT" "postsrsd (forward)"
  claim_port "$SRS_REVERSE_PORT" "postsrsd (reverse)"
  [[ -s $SRS_SECRET_FILE ]] || (umask 077 && head -c 32 /dev/urandom | base64 >"$SRS_SECRET_FILE")
  say "starting postsrsd"
  rm -f "$PIDS/postsrsd.pid"
  postsrsd -s"$SRS_SECRET_FILE" -d"$SRS_DOMAIN" -f"$SRS_FORWARD_PORT" -r"$SRS_REVERSE_PORT" -l127.0.0.1 -4 \
    -unobody -p"$PIDS/postsrsd.pid" -D </dev/null >>"$LOGS/postsrsd.log" 2>&1 9>&-
  wait_for 30 postsrsd "$LOGS/postsrsd.log" 0 port_open 127.0.0.1 "$SRS_REVERSE_PORT"
}

stop_postsrsd() { stop_recorded postsrsd; }

# ---------------------------------------------------------------- Postfix

postfix_running() { postfix -c "$POSTFIX_CONF" status >/dev/null 2>&1; }

# Postfix refuses a configuration directory that its default instance does not list; the
# machine's own instance is otherwise left unconfigured (and unstarted).
allow_postfix_instance() {
  local main=/etc/postfix/main.cf
  grep -qsF "$POSTFIX_CONF" "$main" && return
  if grep -qs '^alternate_config_directories' "$main"; then
    sed -i "s|^alternate_config_directories *=.*|& $POSTFIX_CONF|" "$main"
  else
    echo "alternate_config_directories = $POSTFIX_CONF" >>"$main"
  fi
}

render_postfix() {
  sed -e "s|@RUN@|$POSTFIX_DIR|g" -e "s|@LOGS@|$LOGS|g" -e "s|@MAP@|127.0.0.1:$MAP_PORT|g" \
    -e "s|@MILTER@|127.0.0.1:$MILTER_PORT|g" -e "s|@SPF_MILTER@|$SPF_SOCKET|g" -e "s|@LMTP@|unix:$DOVECOT_DIR/base/lmtp|g" -e "s|@RELAYHOST@|$RELAYHOST|g" \
    -e "s|@LISTEN@|127.0.0.1|g" -e "s|@SMTPD@|127.0.0.1:$POSTFIX_PORT|g" -e "s|@TRUSTED@||g" -e "s|@SUBMITTERS@|vmail|g" \
    -e "s|@SUBMIT_SMTPD@|127.0.0.1:$SUBMIT_PORT|g" -e "s|@SASL_PATH@|$DOVECOT_DIR/base/auth-postfix|g" \
    -e "s|@SRS_FORWARD@|127.0.0.1:$SRS_FORWARD_PORT|g" \
    -e "s|@SRS_REVERSE@|127.0.0.1:$SRS_REVERSE_PORT|g" -e "s|@SRS_DOMAIN@|$SRS_DOMAIN|g" \
    -e "s|@SRS_DOMAIN_RE@|${SRS_DOMAIN//./\\\\.}|g" -e "s|@FORWARD_DOMAIN_RE@|${FORWARD_DOMAIN//./\\\\.}|g" -e "s|@FORWARD_DOMAIN@|$FORWARD_DOMAIN|g" "$1"
}

# The forwarding map starts empty; the rules service (its own user) fills it (postmap -i/-d) and
# Postfix reads it per message, through the group. Nobody else reads it (addresses, tokens).
ensure_forward_map() {
  local maps
  maps=$(dirname "$FORWARD_MAP")
  mkdir -p "$maps"
  if [[ ! -f $FORWARD_MAP.lmdb ]]; then
    : >"$FORWARD_MAP"
    postmap -c "$POSTFIX_CONF" "lmdb:$FORWARD_MAP"
    rm -f "$FORWARD_MAP"
  fi
  chown mailss-rules:postfix "$maps" "$FORWARD_MAP.lmdb"
  chmod 750 "$maps"
  chmod 640 "$FORWARD_MAP.lmdb"
}

# Returns 0 when the configuration changed.
prepare_postfix_instance() {
  mkdir -p "$POSTFIX_CONF" "$POSTFIX_DIR/data" "$POSTFIX_DIR/queue"
  chown postfix "$POSTFIX_DIR/data"
  allow_postfix_instance
  local rendered changed=1
  rendered=$(mktemp)
  render_postfix "$REPO/deploy/postfix/main.cf.in" >"$rendered"
  install_if_changed "$rendered" "$POSTFIX_CONF/main.cf" -m 644 && changed=0
  render_postfix "$REPO/deploy/postfix/master.cf" >"$rendered"
  install_if_changed "$rendered" "$POSTFIX_CONF/master.cf" -m 644 && changed=0
  rm -f "$rendered"
  local table
  for table in header_checks smtp_header_checks forward_domain srs_senders; do
    render_postfix "$REPO/deploy/postfix/$table" >"$rendered.$table"
    install_if_changed "$rendered.$table" "$POSTFIX_CONF/$table" -m 644 && changed=0
    rm -f "$rendered.$table"
  done
  ensure_forward_map
  return $changed
}

start_postfix() {
  if prepare_postfix_instance && postfix_running; then
    say "Postfix config changed: reloading"
    postfix -c "$POSTFIX_CONF" reload >/dev/null 2>&1
  fi
  if ! postfix_running; then
    claim_port "$POSTFIX_PORT" "Postfix (mail from the world)"
    claim_port "$SUBMIT_PORT" "Postfix (the services' mail)"
    say "starting Postfix"
    postfix -c "$POSTFIX_CONF" set-permissions >/dev/null 2>&1 || true
    postfix -c "$POSTFIX_CONF" start </dev/null >>"$LOGS/postfix.log" 2>&1 9>&- ||
      die "Postfix refused to start: $(tail -n 5 "$LOGS/postfix.log")"
    wait_for "$START_TIMEOUT" Postfix "$LOGS/postfix.log" 0 port_open 127.0.0.1 "$POSTFIX_PORT"
  fi
  cat "$POSTFIX_DIR/queue/pid/master.pid" 2>/dev/null | tr -d ' ' >"$PIDS/postfix.pid" || true
}

stop_postfix() {
  if postfix_running; then
    say "stopping Postfix"
    postfix -c "$POSTFIX_CONF" stop >/dev/null 2>&1 || true
  fi
  rm -f "$PIDS/postfix.pid"
}

# ---------------------------------------------------------------- commands

print_env() {
  local mongodb_url=$FERRETDB_URL
  external_mongodb && mongodb_url=$MONGODB_URL
  export_line MAILSS_STACK "$STACK"
  export_line MAILSS_RUN "$RUN"
  export_line RABBITMQ_NODENAME "$RABBITMQ_NODE"
  export_line RABBITMQ_AMQP_PORT "$AMQP_PORT"
  export_line RABBITMQ_MANAGEMENT_PORT "$MANAGEMENT_PORT"
  export_line BROKER_SECRETS_DIR "$BROKER_SECRETS"
  export_line MONGODB_URL "$mongodb_url"
  export_line DOVECOT_PASSWD_DIR "$DOVECOT_DIR/passwd.d"
  export_line DOVECOT_MAIL_DIR "$DOVECOT_DIR/mail"
  export_line DOVECOT_IMAP_HOST 127.0.0.1
  export_line DOVECOT_IMAP_PORT "$IMAP_PORT"
  export_line DOVECOT_LMTP_SOCKET "$DOVECOT_DIR/base/lmtp"
  export_line DOVECOT_IMAP_SOCKET "$DOVECOT_DIR/services/imap"
  export_line DOVECOT_SIEVE_SOCKET "$DOVECOT_DIR/services/sieve"
  export_line OUTBOUND_METER_DIR "$DOVECOT_DIR/outbound"
  export_line DOVECOT_MASTER_USER "$MASTER_USER"
  export_line DOVECOT_MASTER_PASSWORD_FILE "$MASTER_PASSWORD_FILE"
  export_line MAIL_POLICY_API_KEY_FILE "$POLICY_KEY_FILE"
  export_line MAIL_POLICY_PORT "$POLICY_PORT"
  export_line DOVECOT_CONF "$DOVECOT_CONF"
  export_line POSTFIX_SMTP_PORT "$POSTFIX_PORT"
  export_line POSTFIX_MAP_PORT "$MAP_PORT"
  export_line POSTFIX_SUBMIT_PORT "$SUBMIT_PORT"
  export_line NOTIFIER_SMTP_USER "$SUBMIT_USER"
  export_line NOTIFIER_SMTP_PASSWORD_FILE "$SUBMIT_PASSWORD_FILE"
  export_line POSTFIX_CONFIG_DIR "$POSTFIX_CONF"
  export_line POSTFIX_FORWARD_MAP "lmdb:$FORWARD_MAP"
  export_line FORWARD_DOMAIN "$FORWARD_DOMAIN"
  export_line SRS_DOMAIN "$SRS_DOMAIN"
  export_line RELAY_SINK_PORT "$SINK_PORT"
  export_line GATEWAY_PORT "$GATEWAY_PORT"
  export_line HEALTH_DIR "$RUN/health"
  export_line RABBITMQ_DIST_PORT "$DIST_PORT"
  export_line FERRETDB_SOCKET "$FERRETDB_SOCKET"
  export_line SPAMD_PORT "$SPAMD_PORT"
  export_line SPAM_CHECK_MAX_BYTES "$SPAM_CHECK_MAX_BYTES"
  export_line SPAMASS_MILTER_PORT "$MILTER_PORT"
  export_line POSTSRSD_FORWARD_PORT "$SRS_FORWARD_PORT"
  export_line POSTSRSD_REVERSE_PORT "$SRS_REVERSE_PORT"
}

# Single quotes (with ' escaped) so that `eval` and non-bash readers agree.
export_line() { printf "export %s='%s'\n" "$1" "${2//\'/\'\\\'\'}"; }

print_status() {
  local c port
  echo "$STACK stack ($RUN)"
  for c in rabbitmq ferretdb dovecot spamd spf-milter postsrsd postfix; do
    port=$(component_port "$c")
    if component_running "$c"; then
      printf '%-10s running (pid %s)\n' "$c" "$(pid_of "$c")"
    elif [[ $c == ferretdb ]] && external_mongodb; then
      printf '%-10s not used (MONGODB_URL is set)\n' "$c"
    elif port_open 127.0.0.1 "$port"; then
      printf '%-10s not started by stack.sh, but 127.0.0.1:%s answers\n' "$c" "$port"
    else
      printf '%-10s stopped\n' "$c"
    fi
  done
}

component_running() {
  case $1 in dovecot) dovecot_running ;; postfix) postfix_running ;; *) running "$1" ;; esac
}

component_port() {
  case $1 in
    rabbitmq) echo "$AMQP_PORT" ;; dovecot) echo "$IMAP_PORT" ;; spamd) echo "$SPAMD_PORT" ;;
    postsrsd) echo "$SRS_FORWARD_PORT" ;; postfix) echo "$POSTFIX_PORT" ;;
  esac
}

# Two concurrent `up`s (two terminals, parallel test jobs) must not both start
# the same component.
take_lock() {
  [[ $(id -u) == 0 ]] || die "run as root (apt, the stack's users, Dovecot and Postfix instances)"
  mkdir -p "$RUN" "$PIDS" "$LOGS"
  # Logs name addresses and hosts: root's alone (every process writes through the file it was given).
  chmod 700 "$LOGS" "$PIDS"
  exec 9>"$RUN/stack.lock"
  flock -w 600 9 || die "another stack.sh holds $RUN/stack.lock"
}

check_component() {
  case ${1:-} in
    rabbitmq | ferretdb | dovecot | spamassassin | spf | postsrsd | postfix) ;;
    *) die "unknown component '${1:-}' (rabbitmq|ferretdb|dovecot|spamassassin|spf|postsrsd|postfix)" ;;
  esac
}

usage() {
  echo "usage: $0 up|down|status|env" >&2
  echo "       $0 start|stop|restart rabbitmq|ferretdb|dovecot" >&2
  exit 2
}

main() {
  local cmd=${1:-}
  case $cmd in
    env) print_env ;;
    status) print_status ;;
    up)
      take_lock
      ensure_apt_packages
      ensure_users
      prepare_health_dir
      start_rabbitmq
      ensure_broker_admin
      start_ferretdb
      start_dovecot
      start_spamassassin
      start_spf
      start_postsrsd
      start_postfix
      print_status
      ;;
    down)
      take_lock
      stop_postfix
      stop_postsrsd
      stop_spf
      stop_spamassassin
      stop_dovecot
      stop_ferretdb
      stop_rabbitmq
      ;;
    start | stop | restart)
      check_component "${2:-}"
      take_lock
      [[ $cmd == start ]] || "stop_$2"
      [[ $cmd == stop ]] || "start_$2"
      ;;
    *) usage ;;
  esac
}

main "$@"
