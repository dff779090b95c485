#!/usr/bin/env bash
# Make PostgreSQL and Redis run on loopback for the distributed-mode tests, installing them from
# Debian when missing, and print the settings the tests read (as KEY=value lines on stdout).
#
#   eval "$(contrib/lab/services.sh)"   # then CORRAL_TEST_POSTGRES_URL / CORRAL_TEST_REDIS_URL
set -euo pipefail

PG_PORT=${CORRAL_LAB_PG_PORT:-5432}
REDIS_PORT=${CORRAL_LAB_REDIS_PORT:-6379}
ROLE=corral_test
PASSWORD=corral_test

log() { echo "services: $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else
    log "need root (or sudo) to run: $*"; exit 1; fi
}

missing=()
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} from Debian"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
fi

if ! pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if [ -z "$version" ]; then log "no PostgreSQL cluster under /etc/postgresql"; exit 1; fi
  log "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
  for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break; sleep 0.5; done
  pg_isready -q -h 127.0.0.1 -p "$PG_PORT" || { log "PostgreSQL did not start"; exit 1; }
fi

# A role that may create the per-test databases; works with trust and password authentication.
as_root runuser -u postgres -- psql -q -p "$PG_PORT" -v ON_ERROR_STOP=1 >&2 <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD';
  END IF;
END
\$\$;
SQL

if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  log "starting Redis"
  mkdir -p /tmp/corral-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /tmp/corral-redis --logfile /tmp/corral-redis/redis.log >&2
  for _ in $(seq 1 40); do redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.25; done
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null || { log "Redis did not start"; exit 1; }
fi

echo "CORRAL_TEST_POSTGRES_URL=postgresql://$ROLE:$PASSWORD@127.0.0.1:$PG_PORT/postgres"
echo "CORRAL_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
