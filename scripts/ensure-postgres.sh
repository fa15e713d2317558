#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 with a database for the tests.
# Uses the one already running; otherwise installs Debian's postgresql and starts it.
set -euo pipefail
HOST=127.0.0.1
PORT=5432

ready() { pg_isready -q -h "$HOST" -p "$PORT" 2>/dev/null; }

if ! command -v pg_isready >/dev/null 2>&1 || ! ready; then
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    echo "ensure-postgres: installing Debian's postgresql package" >&2
    if [ "$(id -u)" -ne 0 ]; then
      echo "ensure-postgres: PostgreSQL is missing and I am not root: install 'postgresql' and re-run" >&2
      exit 1
    fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
  if [ -z "$version" ]; then
    echo "ensure-postgres: no PostgreSQL cluster found after install" >&2
    exit 1
  fi
  # Trust local TCP connections: this server is for the test suite on this machine only.
  hba=/etc/postgresql/$version/main/pg_hba.conf
  if ! grep -q "asye-training tests" "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust # asye-training tests' "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
    || pg_ctlcluster "$version" main start
  for _ in $(seq 1 30); do ready && break; sleep 1; done
fi

if ! ready; then
  echo "################################################################" >&2
  echo "ensure-postgres: PostgreSQL is NOT reachable on $HOST:$PORT."      >&2
  echo "The PostgreSQL half of the suite cannot run.                     " >&2
  echo "################################################################" >&2
  exit 1
fi
psql -h "$HOST" -p "$PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" postgres \
  | grep -q 1 || psql -h "$HOST" -p "$PORT" -U postgres -c "CREATE DATABASE test" postgres >/dev/null
echo "ensure-postgres: PostgreSQL ready on $HOST:$PORT" >&2
