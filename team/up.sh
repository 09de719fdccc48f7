#!/usr/bin/env bash
# Start the team stack on this machine: PostgreSQL (backend store) + `mlflow server` with the
# basic-auth app and a proxied artifact store, and create the team's user.
#
#   TEAM_DIR=team-stack  TEAM_PG_PORT=55432  TEAM_MLFLOW_PORT=5050  TEAM_USER=team  bash team/up.sh
#
# Everything lives in $TEAM_DIR (PostgreSQL cluster, artifacts, logs, generated secrets); no
# root-owned state outside it. Idempotent: a running stack is left as it is. Writes
# $TEAM_DIR/team.env (mode 600) to `source` before using crs-risk against the stack.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
TEAM_DIR=$(mkdir -p "${TEAM_DIR:-team-stack}" && cd "${TEAM_DIR:-team-stack}" && pwd)
PG_PORT=${TEAM_PG_PORT:-55432}
PORT=${TEAM_MLFLOW_PORT:-5050}
TEAM_USER=${TEAM_USER:-team}
WORKERS=${TEAM_MLFLOW_WORKERS:-2}
PY=${PY:-$REPO/.venv/bin/python}
MLFLOW=$(dirname "$PY")/mlflow
URI="http://127.0.0.1:$PORT"
say() { echo "team-up: $*"; }
# alive PID: the process exists and is not a zombie (a killed server whose parent has not reaped
# it yet still answers `kill -0`)
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [ -n "$st" ] && [[ $st != Z* ]]; }
die() { echo "team-up: $*" >&2; exit 1; }

[ -x "$MLFLOW" ] || die "mlflow not found at $MLFLOW (run \`make venv\`)"
"$PY" -c "import psycopg2, flask_wtf" 2>/dev/null \
  || die "the venv lacks psycopg2-binary / mlflow[auth] (run \`make venv\`)"

# --- PostgreSQL binaries (Debian's package; installed only if missing) ---------------------------
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)}
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
  [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed; ask an admin for Debian's postgresql package"
  say "installing Debian's postgresql package"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi

# As root, PostgreSQL must run as the unprivileged `postgres` user (initdb refuses root).
if [ "$(id -u)" = 0 ]; then
  PG_OWNER=postgres
  as_pg() { runuser -u postgres -- "$@"; }
  as_pg test -x "$TEAM_DIR" \
    || die "the postgres user cannot reach $TEAM_DIR (a parent folder is private); choose a TEAM_DIR under a world-traversable folder, e.g. TEAM_DIR=/srv/crs-team"
else
  PG_OWNER=$(id -un)
  as_pg() { "$@"; }
fi

# --- secrets (generated once, kept in $TEAM_DIR, mode 600) ---------------------------------------
umask 077
SECRETS=$TEAM_DIR/secrets.env
if [ ! -f "$SECRETS" ]; then
  gen() { "$PY" -c "import secrets; print(secrets.token_urlsafe(24))"; }
  {
    echo "PG_PASSWORD=$(gen)"
    echo "MLFLOW_FLASK_SERVER_SECRET_KEY=$(gen)"
    echo "MLFLOW_AUTH_ADMIN_PASSWORD=$(gen)"
    echo "TEAM_PASSWORD=${TEAM_PASSWORD:-$(gen)}"
  } >"$SECRETS"
fi
# shellcheck disable=SC1090
source "$SECRETS"
echo "127.0.0.1:$PG_PORT:*:mlflow:$PG_PASSWORD" >"$TEAM_DIR/pgpass"
export PGPASSFILE=$TEAM_DIR/pgpass
umask 022

# --- the cluster --------------------------------------------------------------------------------
PGDATA=$TEAM_DIR/pg
PGRUN=$TEAM_DIR/pgrun  # socket and server log (written by the postgres user)
mkdir -p "$PGRUN" "$TEAM_DIR/artifacts"
chown "$PG_OWNER" "$PGRUN" && chmod 700 "$PGRUN"
if [ ! -f "$PGDATA/PG_VERSION" ]; then
  say "initialising a PostgreSQL cluster in $PGDATA"
  mkdir -p "$PGDATA" && chown "$PG_OWNER" "$PGDATA" && chmod 700 "$PGDATA"
  (umask 077 && echo "$PG_PASSWORD" >"$PGRUN/pwfile") && chown "$PG_OWNER" "$PGRUN/pwfile"
  as_pg "$PG_BIN/initdb" -D "$PGDATA" -U mlflow -A scram-sha-256 --pwfile="$PGRUN/pwfile" \
    -E UTF8 --no-instructions >"$TEAM_DIR/initdb.log" 2>&1 \
    || { rm -f "$PGRUN/pwfile"; die "initdb failed (see $TEAM_DIR/initdb.log)"; }
  rm -f "$PGRUN/pwfile"
fi
if as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
  say "PostgreSQL already running on 127.0.0.1:$PG_PORT"
else
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -w -t 60 -l "$PGRUN/postgresql.log" \
    -o "-p $PG_PORT -k $PGRUN -c listen_addresses=127.0.0.1" start >/dev/null \
    || die "PostgreSQL did not start (see $PGRUN/postgresql.log)"
  say "PostgreSQL started on 127.0.0.1:$PG_PORT"
fi
for db in mlflow mlflow_auth; do
  if ! "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U mlflow -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1; then
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U mlflow "$db"
  fi
done

# --- the MLflow server --------------------------------------------------------------------------
PG_URI="postgresql+psycopg2://mlflow@127.0.0.1:$PG_PORT"
cat >"$TEAM_DIR/auth.ini" <<INI
[mlflow]
# Every team member may read, edit and manage every experiment and registered model (one
# trusted team; rollback of a failed registration deletes versions). Tighten per resource with
# MLflow's permission API if needed.
default_permission = MANAGE
database_uri = $PG_URI/mlflow_auth
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# Cache verified credentials for 60 s per server worker: without it every request re-runs the
# password hash (seconds per call on a busy 2-core machine). A changed password reaches the
# other workers within 60 s.
auth_cache_ttl_seconds = 60
INI
PIDFILE=$TEAM_DIR/mlflow.pid
if [ -f "$PIDFILE" ] && alive "$(cat "$PIDFILE")"; then
  say "mlflow server already running (pid $(cat "$PIDFILE")) at $URI"
else
  say "starting mlflow server at $URI (≈30 s)"
  MLFLOW_AUTH_CONFIG_PATH=$TEAM_DIR/auth.ini \
    MLFLOW_FLASK_SERVER_SECRET_KEY=$MLFLOW_FLASK_SERVER_SECRET_KEY \
    MLFLOW_AUTH_ADMIN_PASSWORD=$MLFLOW_AUTH_ADMIN_PASSWORD \
    PATH="$(dirname "$PY"):$PATH" \
    setsid "$MLFLOW" server --app-name basic-auth \
    --backend-store-uri "$PG_URI/mlflow" \
    --artifacts-destination "$TEAM_DIR/artifacts" \
    --host 127.0.0.1 --port "$PORT" --workers "$WORKERS" \
    >"$TEAM_DIR/mlflow.log" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
fi
deadline=$((SECONDS + ${TEAM_START_TIMEOUT:-180}))
until curl -fsS -o /dev/null "$URI/health" 2>/dev/null; do
  alive "$(cat "$PIDFILE")" || die "mlflow server exited (see $TEAM_DIR/mlflow.log)"
  [ $SECONDS -lt $deadline ] || die "mlflow server not up after ${TEAM_START_TIMEOUT:-180} s (see $TEAM_DIR/mlflow.log)"
  sleep 1
done

# --- the team user (through MLflow's auth API, as the admin) ------------------------------------
MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD=$MLFLOW_AUTH_ADMIN_PASSWORD \
  TEAM_USER=$TEAM_USER TEAM_PASSWORD=$TEAM_PASSWORD "$PY" -W ignore "$REPO/team/users.py" "$URI"

umask 077
cat >"$TEAM_DIR/team.env" <<ENV
export MLFLOW_TRACKING_URI=$URI
export MLFLOW_TRACKING_USERNAME=$TEAM_USER
export MLFLOW_TRACKING_PASSWORD=$TEAM_PASSWORD
ENV
say "up: MLflow UI and tracking server at $URI (user $TEAM_USER)"
say "use it:  source $TEAM_DIR/team.env   (password also in $SECRETS)"
