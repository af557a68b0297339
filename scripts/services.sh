#!/usr/bin/env bash
# Install (Debian packages) and start Redis and MariaDB when they are not running, wait until both
# answer, and make sure the test user exists. Idempotent: safe to run on every test run.
set -euo pipefail

MYSQL_TEST_USER=${MYSQL_TEST_USER:-anl}
MYSQL_TEST_PASSWORD=${MYSQL_TEST_PASSWORD:-anl-test-pw}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
if [ ${#need[@]} -gt 0 ]; then
  echo "services: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

wait_for() {  # wait_for NAME SECONDS COMMAND...: poll every 0.1 s
  local name=$1 limit=$2; shift 2
  local tries=$((limit * 10))
  until "$@" >/dev/null 2>&1; do
    tries=$((tries - 1))
    if [ "$tries" -le 0 ]; then echo "services: $name did not answer within ${limit}s" >&2; return 1; fi
    sleep 0.1
  done
}

if ! redis-cli ping >/dev/null 2>&1; then
  echo "services: starting redis-server"
  redis-server --daemonize yes --save "" --appendonly no --maxmemory-policy noeviction >/dev/null
  wait_for redis 30 redis-cli ping
fi

if ! mariadb-admin ping >/dev/null 2>&1; then
  echo "services: starting mariadb"
  $SUDO service mariadb start >/dev/null 2>&1 || true
  wait_for mariadb 60 mariadb-admin ping
fi

# Root works only over the unix socket; the tests connect over TCP (PyMySQL's localhost is TCP).
$SUDO mariadb -uroot <<SQL
CREATE USER IF NOT EXISTS '${MYSQL_TEST_USER}'@'127.0.0.1' IDENTIFIED BY '${MYSQL_TEST_PASSWORD}';
CREATE USER IF NOT EXISTS '${MYSQL_TEST_USER}'@'localhost' IDENTIFIED BY '${MYSQL_TEST_PASSWORD}';
GRANT ALL PRIVILEGES ON \`anl\_%\`.* TO '${MYSQL_TEST_USER}'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`anl\_%\`.* TO '${MYSQL_TEST_USER}'@'localhost';
FLUSH PRIVILEGES;
SQL
echo "services: redis and mariadb are up"
