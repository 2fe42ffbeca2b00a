#!/usr/bin/env bash
# shellcheck shell=bash
#
# Shared helpers for Harrow's scripts (scripts/test, scripts/run, .ci/run).
# This file is meant to be *sourced*, not executed. It deliberately does not
# set shell options itself: the sourcing script owns `set -euo pipefail`.
#
# Conventions:
#   * Every script starts its own private servers on its own ports. Debian's
#     redis-server package also starts a system service on 6379; we never use
#     it, so tests and local runs cannot interfere with (or depend on) it.
#   * Servers are started in the foreground of a background job (`&`), not
#     with --daemonize, so we know the real pid immediately and can always
#     kill it from a trap even if redis-cli cannot reach it.

# Guard against double sourcing (harmless, but keeps functions single-defined).
if [[ -n "${HARROW_LIB_SOURCED:-}" ]]; then
  return 0
fi
HARROW_LIB_SOURCED=1

# Repo root = parent of the directory holding this file. Computed from
# BASH_SOURCE so it works no matter what the caller's cwd is.
HARROW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export HARROW_ROOT

harrow_log() {
  # Log to stderr so functions that print values on stdout
  # (e.g. harrow_free_port) stay usable in $(...).
  printf 'harrow: %s\n' "$*" >&2
}

harrow_die() {
  harrow_log "error: $*"
  exit 1
}

# Run a command as root: directly if we are root, via sudo if available.
harrow_as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    harrow_die "need root (or sudo) to run: $*"
  fi
}

# ---------------------------------------------------------------------------
# Dependencies
# ---------------------------------------------------------------------------

# System packages the build and tests need:
#   redis-server    - the scripts start private Redis servers from it
#                     (redis-cli comes along as its dependency, redis-tools)
#   libhiredis-dev  - C client library the Swift package links against
#   pkg-config      - SwiftPM's system-library targets locate hiredis with it
#   postgresql-15   - the scripts start private PostgreSQL clusters from it
#   postgresql-client-15 - psql, to create databases
#   openssh-client  - ssh-keygen, which the tests use to check generated keys
#   libcurl4-openssl-dev - libcurl, which sends mail over SMTP
#   python3-aiosmtpd - the SMTP server the mail tests send to
#   bubblewrap      - the sandbox operations' scripts run in (worker --sandbox auto|bwrap)
#   util-linux      - setpriv, with which a root worker runs scripts as --run-as
#   libgit2-dev     - libgit2, which checks out repositories and lists their refs
#   libssh2-1-dev   - libssh2, which runs scripts on remote targets
#   git             - git http-backend and git-upload-pack, which serve the tests' repositories
#   openssh-server  - sshd, the real SSH server the checkout and remote-target tests use
HARROW_APT_PACKAGES=(redis-server libhiredis-dev pkg-config postgresql-15 postgresql-client-15 openssh-client
  libcurl4-openssl-dev python3-aiosmtpd bubblewrap util-linux libgit2-dev libssh2-1-dev git openssh-server)

# The browser tests' (scripts/browser-test), installed by scripts/test only: scripts/run needs
# no browser.
#   chromium, chromium-driver - a headless browser and its WebDriver
#   python3-selenium          - drives it (Debian's, under /usr/bin/python3)
HARROW_BROWSER_PACKAGES=(chromium chromium-driver python3-selenium)

# Installs those of the given Debian packages that are missing.
harrow_install_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    # `dpkg -s` succeeds only when the package is known; also require the
    # "install ok installed" state so half-removed packages count as missing.
    if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
      missing+=("$pkg")
    fi
  done

  if ((${#missing[@]} > 0)); then
    harrow_log "installing missing packages: ${missing[*]}"
    # Update the index only when we actually install something: it is slow
    # and needs the network, and the common case is "everything present".
    harrow_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    harrow_as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq "${missing[@]}"
  fi
}

harrow_install_browser() {
  harrow_install_packages "${HARROW_BROWSER_PACKAGES[@]}"
}

harrow_install_deps() {
  harrow_install_packages "${HARROW_APT_PACKAGES[@]}"

  # Swift is installed outside of apt (under /opt/swift on these machines);
  # non-login shells often do not have it on PATH.
  if ! command -v swift >/dev/null 2>&1; then
    if [[ -x /opt/swift/usr/bin/swift ]]; then
      export PATH="/opt/swift/usr/bin:$PATH"
    else
      harrow_die "swift not found on PATH or at /opt/swift/usr/bin/swift; install a Swift toolchain first"
    fi
  fi

  command -v redis-server >/dev/null 2>&1 || harrow_die "redis-server not on PATH after install"
  command -v redis-cli >/dev/null 2>&1 || harrow_die "redis-cli not on PATH after install"
  [[ -x "$HARROW_PG_BIN/initdb" ]] || harrow_die "PostgreSQL 15 not in $HARROW_PG_BIN after install"
}

# ---------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------

# Print a currently free loopback TCP port. Binding to port 0 lets the kernel
# pick one; there is a small race between closing it here and the server
# binding it, which is acceptable for tests.
# harrow_python_venv DIR
# Creates a Python virtual environment in DIR, installing Debian's venv support when this
# Python lacks it (Debian splits it out of python3).
harrow_python_venv() {
  local dir="$1"
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    harrow_log "installing python3-venv"
    harrow_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    harrow_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
  fi
  python3 -m venv "$dir"
}

harrow_free_port() {
  python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

# True if PID is running. Unlike plain `kill -0`, a zombie (exited but not yet
# reaped, which is what our own background children are right after they
# exit) counts as gone; otherwise stop loops would wait for their timeout.
harrow_pid_alive() {
  local pid="$1" stat
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/stat" ]]; then
    read -r stat 2>/dev/null <"/proc/$pid/stat" || return 1
    # Format: "pid (comm) STATE ..."; comm may contain spaces/parens, so cut
    # after the last ") ".
    stat="${stat##*) }"
    [[ "${stat%% *}" != Z ]] || return 1
  fi
  return 0
}

# harrow_wait_pid PID TIMEOUT_SECONDS
# Waits until PID has exited; returns 1 if it is still running after the
# timeout. Reaps PID if it is our child.
harrow_wait_pid() {
  local pid="$1" timeout="$2" i
  for ((i = 0; i < timeout * 10; i++)); do
    harrow_pid_alive "$pid" || break
    sleep 0.1
  done
  harrow_pid_alive "$pid" && return 1
  # Reap it if it is our child (no-op with an error we hide otherwise).
  wait "$pid" 2>/dev/null || true
  return 0
}

# harrow_stop_pid PID TIMEOUT_SECONDS
# SIGTERM, wait up to TIMEOUT_SECONDS, then SIGKILL. Safe if PID is gone.
harrow_stop_pid() {
  local pid="$1" timeout="$2"
  harrow_pid_alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  if ! harrow_wait_pid "$pid" "$timeout"; then
    harrow_log "pid $pid did not exit ${timeout}s after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    harrow_wait_pid "$pid" 5 || true
  fi
}

# ---------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------

# True if PID is a live redis-server process. Checking the command name (not
# just `kill -0`) matters for long-lived pid files such as .data/redis's: after
# a reboot the recorded pid may belong to an unrelated process, which we must
# neither reuse nor kill.
harrow_pid_is_redis() {
  local pid="$1" comm
  harrow_pid_alive "$pid" || return 1
  if [[ -r "/proc/$pid/comm" ]]; then
    comm="$(<"/proc/$pid/comm")"
    [[ "$comm" == redis-server* ]] || return 1
  fi
  return 0
}

# True if DIR/redis.pid names a live redis-server.
harrow_redis_running() {
  local dir="$1" pid
  [[ -f "$dir/redis.pid" ]] || return 1
  pid="$(<"$dir/redis.pid")"
  harrow_pid_is_redis "$pid"
}

# harrow_start_redis DIR PORT [aof]
# Starts a private redis-server in the background bound to 127.0.0.1:PORT,
# with its data, log and pid file in DIR. Waits until it answers PING.
harrow_start_redis() {
  local dir="$1" port="$2" mode="${3:-}"
  [[ -n "$dir" && -n "$port" ]] || harrow_die "usage: harrow_start_redis DIR PORT [aof|cluster]"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)" # absolute, so --dir and --logfile agree
  if harrow_redis_running "$dir"; then
    # Overwriting the pid file would orphan the running server.
    harrow_die "redis already running from $dir (pid $(<"$dir/redis.pid"))"
  fi

  local args=(
    --bind 127.0.0.1
    --port "$port"
    --dir "$dir"
    --logfile "$dir/redis.log"
    # No RDB snapshots: tests want a clean, fast server; scripts/run relies
    # on AOF for durability instead.
    --save ''
    --daemonize no
  )
  case "$mode" in
    "") ;;
    aof) args+=(--appendonly yes --appendfsync everysec) ;;
    cluster)
      # A node of a Redis Cluster; its bus on a free port of its own (port + 10000 may be
      # taken, or beyond 65535). A second's node timeout: tests kill masters.
      args+=(--cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 1000
        --cluster-port "$(harrow_free_port)")
      ;;
    *) harrow_die "harrow_start_redis: unknown mode '$mode' (expected 'aof', 'cluster' or nothing)" ;;
  esac

  # Background job rather than --daemonize: $! is the server's real pid.
  # stdin from /dev/null so it never competes for the terminal; stdout/err
  # go to the log (redis itself writes to --logfile).
  redis-server "${args[@]}" </dev/null >>"$dir/redis.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/redis.pid"

  # Poll for up to ~10 s (100 x 0.1 s). A bare PING is not enough: if PORT
  # is already taken by another Redis, that one answers PONG while ours dies
  # on bind. So require the answering server's process_id to be our pid.
  local i info
  for ((i = 0; i < 100; i++)); do
    info="$(redis-cli -h 127.0.0.1 -p "$port" info server 2>/dev/null || true)"
    info="${info//$'\r'/}" # INFO lines end in CRLF
    if [[ "$info" == *$'\n'"process_id:$pid"$'\n'* ]]; then
      harrow_log "redis started (pid $pid, port $port, dir $dir${mode:+, $mode})"
      return 0
    fi
    # Fail early if it died, e.g. because the port was taken.
    harrow_pid_alive "$pid" || break
    sleep 0.1
  done

  harrow_log "redis on port $port did not come up; last log lines:"
  tail -n 20 "$dir/redis.log" >&2 || true
  harrow_stop_pid "$pid" 5
  rm -f "$dir/redis.pid"
  harrow_die "failed to start redis-server on port $port"
}

# harrow_start_redis_cluster DIR
# A private Redis Cluster: three masters with a replica each, under DIR/node-N,
# on free loopback ports, joined with `redis-cli --cluster create`. Waits until
# every node reports cluster_state:ok and every replica is linked, then sets HARROW_CLUSTER_URL to
# redis+cluster://127.0.0.1:port,... (every node a seed).
harrow_start_redis_cluster() {
  local dir="$1" index port ports=() seeds=()
  [[ -n "$dir" ]] || harrow_die "usage: harrow_start_redis_cluster DIR"
  for index in 1 2 3 4 5 6; do
    port="$(harrow_free_port)"
    harrow_start_redis "$dir/node-$index" "$port" cluster
    ports+=("$port")
    seeds+=("127.0.0.1:$port")
  done
  redis-cli --cluster create "${seeds[@]}" --cluster-replicas 1 --cluster-yes \
    </dev/null >"$dir/create.log" 2>&1 || {
    cat "$dir/create.log" >&2
    harrow_die "redis-cli --cluster create failed"
  }
  # Every node sees every slot served, and every replica's link to its master is up (a
  # replica still syncing could not take over from a master a test kills).
  local waited state
  for ((waited = 0; waited < 300; waited++)); do
    state=ok
    for port in "${ports[@]}"; do
      redis-cli -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || state=waiting
      if redis-cli -p "$port" info replication 2>/dev/null | grep -q '^role:slave'; then
        redis-cli -p "$port" info replication 2>/dev/null | grep -q '^master_link_status:up' || state=waiting
      fi
    done
    if [[ $state == ok ]]; then
      HARROW_CLUSTER_URL="redis+cluster://$(IFS=,; echo "${seeds[*]}")"
      harrow_log "redis cluster ready: $HARROW_CLUSTER_URL"
      return 0
    fi
    sleep 0.1
  done
  harrow_die "the redis cluster in $dir did not reach cluster_state:ok within 30 s"
}

# harrow_stop_redis_cluster DIR
# Stops every node harrow_start_redis_cluster DIR started; safe when none runs.
harrow_stop_redis_cluster() {
  local dir="$1" node
  for node in "$dir"/node-*; do
    [[ -d "$node" ]] && harrow_stop_redis "$node"
  done
  return 0
}

# harrow_stop_redis DIR
# Stops the redis started by harrow_start_redis DIR. Safe to call when it is
# not running (so cleanup traps can call it unconditionally).
harrow_stop_redis() {
  local dir="$1" pid
  [[ -f "$dir/redis.pid" ]] || return 0
  pid="$(<"$dir/redis.pid")"
  if ! harrow_pid_is_redis "$pid"; then
    # Stale pid file (server already gone, or pid reused): nothing to stop.
    rm -f "$dir/redis.pid"
    return 0
  fi

  # SIGTERM makes redis shut down cleanly, like `SHUTDOWN`: it fsyncs the
  # AOF when AOF is on, and with --save '' it writes no RDB (so effectively
  # NOSAVE). Signalling the pid avoids needing to know the port. SIGKILL
  # after 10 s as a last resort so cleanup can never hang.
  harrow_stop_pid "$pid" 10
  rm -f "$dir/redis.pid"
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------
# Private PostgreSQL 15 clusters, like the Redis servers above: initdb into a
# directory of ours, a loopback port of ours, stopped by us. PostgreSQL refuses
# to run as root, so as root the cluster belongs to the `postgres` user that
# Debian's package creates, and every server command runs as that user.

HARROW_PG_BIN="/usr/lib/postgresql/15/bin"

# Runs a command as the user that owns our clusters.
harrow_as_pg() {
  if [[ "$(id -u)" -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# True if DIR holds a cluster whose server is running.
harrow_postgres_running() {
  local dir="$1"
  [[ -f "$dir/PG_VERSION" ]] || return 1
  harrow_as_pg "$HARROW_PG_BIN/pg_ctl" -D "$dir" status >/dev/null 2>&1
}

# harrow_start_postgres DIR PORT [fast]
# Creates a cluster in DIR if there is none (superuser `harrow`, trust on
# loopback only: the server listens on 127.0.0.1 and a socket in DIR), starts
# it on 127.0.0.1:PORT and waits until it accepts connections. `fast` turns
# off fsync and friends: for throw-away test clusters only.
harrow_start_postgres() {
  local dir="$1" port="$2" mode="${3:-}"
  [[ -n "$dir" && -n "$port" ]] || harrow_die "usage: harrow_start_postgres DIR PORT [fast]"
  [[ -x "$HARROW_PG_BIN/initdb" ]] || harrow_die "PostgreSQL 15 not found in $HARROW_PG_BIN (harrow_install_deps installs it)"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if [[ "$(id -u)" -eq 0 ]]; then
    chown postgres:postgres "$dir"
    # The server user must be able to reach DIR through its parents.
    local parent
    parent="$(dirname "$dir")"
    while [[ "$parent" != / ]]; do
      chmod o+x "$parent" 2>/dev/null || true
      parent="$(dirname "$parent")"
    done
  fi
  chmod 700 "$dir"
  if harrow_postgres_running "$dir"; then
    harrow_die "postgres already running from $dir"
  fi
  if [[ ! -f "$dir/PG_VERSION" ]]; then
    harrow_as_pg "$HARROW_PG_BIN/initdb" -D "$dir" -U harrow --auth=trust --encoding=UTF8 --no-locale \
      >"$dir/../$(basename "$dir").initdb.log" 2>&1 ||
      harrow_die "initdb failed; see $dir/../$(basename "$dir").initdb.log"
  fi
  local options="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200"
  if [[ "$mode" == fast ]]; then
    options+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  if ! harrow_as_pg "$HARROW_PG_BIN/pg_ctl" -D "$dir" -o "$options" -l "$dir/postgres.log" -w -t 60 start >/dev/null; then
    tail -n 20 "$dir/postgres.log" >&2 || true
    harrow_die "failed to start postgres on port $port"
  fi
  harrow_log "postgres started (port $port, dir $dir)"
}

# harrow_stop_postgres DIR
# Stops the cluster in DIR (fast shutdown: clients are disconnected, data is
# flushed). Safe to call when it is not running.
harrow_stop_postgres() {
  local dir="$1"
  harrow_postgres_running "$dir" || return 0
  harrow_as_pg "$HARROW_PG_BIN/pg_ctl" -D "$dir" -m fast -w -t 30 stop >/dev/null ||
    harrow_as_pg "$HARROW_PG_BIN/pg_ctl" -D "$dir" -m immediate -w -t 10 stop >/dev/null || true
}

# harrow_create_database PORT NAME
# Creates database NAME on the local cluster on PORT unless it exists.
harrow_create_database() {
  local port="$1" name="$2"
  if [[ "$(psql -h 127.0.0.1 -p "$port" -U harrow -d postgres -tAc "select 1 from pg_database where datname = '$name'")" != 1 ]]; then
    psql -h 127.0.0.1 -p "$port" -U harrow -d postgres -qc "create database \"$name\"" >/dev/null
  fi
}
