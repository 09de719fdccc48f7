#!/usr/bin/env bash
# Stop the team stack started by team/up.sh (the data stays in $TEAM_DIR; `rm -rf` it to reset).
set -uo pipefail
cd "$(dirname "$0")/.."
TEAM_DIR=${TEAM_DIR:-team-stack}
[ -d "$TEAM_DIR" ] || { echo "team-down: no stack in $TEAM_DIR"; exit 0; }
TEAM_DIR=$(cd "$TEAM_DIR" && pwd)
PIDFILE=$TEAM_DIR/mlflow.pid
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [ -n "$st" ] && [[ $st != Z* ]]; }
if [ -f "$PIDFILE" ] && alive "$(cat "$PIDFILE")"; then
  pid=$(cat "$PIDFILE")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"  # the server's process group (workers)
  for _ in $(seq 1 30); do alive "$pid" || break; sleep 0.5; done
  alive "$pid" && kill -KILL -- "-$pid" 2>/dev/null
  echo "team-down: mlflow server stopped"
fi
rm -f "$PIDFILE"
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
if [ -f "$TEAM_DIR/pg/PG_VERSION" ] && [ -n "$PG_BIN" ]; then
  if [ "$(id -u)" = 0 ]; then as_pg() { runuser -u postgres -- "$@"; }; else as_pg() { "$@"; }; fi
  if as_pg "$PG_BIN/pg_ctl" -D "$TEAM_DIR/pg" status >/dev/null 2>&1; then
    as_pg "$PG_BIN/pg_ctl" -D "$TEAM_DIR/pg" -m fast -w stop >/dev/null && echo "team-down: PostgreSQL stopped"
  fi
fi
