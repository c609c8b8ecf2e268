#!/usr/bin/env bash
# scripts/testenv.sh CMD [ARGS...]
#
# Runs CMD with a real Redis and a real MariaDB reachable, for integration
# tests. It exports:
#
#   REDIS_URL=redis://127.0.0.1:<port>/0
#   MYSQL_DSN=root@tcp(127.0.0.1:<port>)/chime?parseTime=true&loc=UTC
#
# If REDIS_URL / MYSQL_DSN are already set and the servers behind them answer,
# they are used as they are (so CI services, or an outer testenv.sh, are
# reused). Otherwise throwaway servers are started on free loopback ports with
# their data in a temporary directory; they are stopped and the directory is
# removed when this script exits, whatever CMD's outcome. The exit status is
# CMD's.
#
# Missing server binaries are installed with apt-get (Debian/Ubuntu);
# redis-server always, since the Redis Cluster test runs its own nodes,
# promtool (package prometheus) for the metrics and alert rule checks, and
# chromium for the console's browser tests. The
# packaged system services are never used: they may hold real data, listen on
# the default ports, and need init/systemd, which containers often lack.
set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

# Debian keeps mariadbd in /usr/sbin, which is not on non-root users' PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

readonly STARTUP_TIMEOUT=60 # seconds to wait for each server to come up
readonly PORT_ATTEMPTS=20   # how many candidate ports to try per server

log() { echo "testenv: $*" >&2; }
die() { log "$*"; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------------------
# Cleanup. Installed before anything is started so that every exit path (CMD
# failing, a server failing to start, Ctrl-C, SIGTERM) stops what we started.

TMP=""
REDIS_PID=""
MYSQL_PID=""
INSTALL_PID=""
POLICY_RC_CREATED=""

# sudo only where needed and available (CI and containers run as root).
SUDO=""
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
fi

# spawn LOG CMD...: run CMD in the background, output appended to LOG, in a
# process group of its own (job control on for just this one job; its pgid is
# its pid, SPAWNED). That way
#  - stop_group also reaches CMD's children (mariadb-install-db is a shell
#    script running a bootstrap mariadbd), and
#  - Ctrl-C in the terminal, which goes to the foreground group, interrupts
#    the tests but leaves shutting down the servers to our cleanup.
SPAWNED=""
spawn() {
    local log=$1
    shift
    set -m
    "$@" >>"$log" 2>&1 </dev/null &
    SPAWNED=$!
    set +m
}

# stop_group PID: SIGTERM to the process group, wait up to 15 s for a clean
# shutdown, then SIGKILL whatever is left. The data is thrown away anyway; the
# grace period only keeps logs tidy.
stop_group() {
    local pid=$1 i
    kill -TERM -- "-$pid" 2>/dev/null || return 0
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317  # only called via trap
cleanup() {
    local rc=$?
    # A second signal (impatient Ctrl-C, CI sending TERM twice) must not cut
    # the cleanup short and orphan a server; stop_group is bounded anyway.
    trap '' INT TERM HUP
    set +e
    [[ -n $INSTALL_PID ]] && stop_group "$INSTALL_PID"
    [[ -n $REDIS_PID ]] && stop_group "$REDIS_PID"
    [[ -n $MYSQL_PID ]] && stop_group "$MYSQL_PID"
    [[ -n $TMP && -d $TMP ]] && rm -rf -- "$TMP"
    [[ -n $POLICY_RC_CREATED ]] && $SUDO rm -f /usr/sbin/policy-rc.d
    exit "$rc"
}
trap cleanup EXIT
# Turn signals into a normal exit so the EXIT trap runs (128 + signal number).
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------------------
# Helpers for checking existing servers.

# tcp_open HOST PORT: true if something accepts a TCP connection there.
# Run under `timeout` because a connect to a filtered host can hang for minutes.
tcp_open() {
    # shellcheck disable=SC2016  # $1/$2 expand in the inner bash
    timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# redis_ping URL: true if the Redis at URL answers PING with PONG.
redis_ping() {
    local url=$1
    if have redis-cli; then
        [[ $(timeout 5 redis-cli --no-auth-warning -u "$url" ping 2>/dev/null) == PONG ]]
        return
    fi
    # No redis-cli: speak the inline protocol over bash's /dev/tcp. This
    # cannot authenticate, so a password-protected URL needs redis-cli.
    local hostport=${url#*://}
    hostport=${hostport##*@}
    hostport=${hostport%%/*}
    hostport=${hostport%%\?*}
    local host=${hostport%:*} port=${hostport##*:}
    [[ $hostport == *:* ]] || { host=$hostport; port=6379; }
    host=${host#[}
    host=${host%]}
    # shellcheck disable=SC2016  # $1/$2 expand in the inner bash
    timeout 5 bash -c '
        exec 3<>"/dev/tcp/$1/$2" || exit 1
        printf "PING\r\n" >&3
        IFS= read -r reply <&3
        [[ $reply == +PONG* ]]' _ "$host" "$port" 2>/dev/null
}

# redis_version URL: the server's version ("version unknown" without
# redis-cli).
redis_version() {
    local v=""
    if have redis-cli; then
        v=$(timeout 5 redis-cli --no-auth-warning -u "$1" info server 2>/dev/null |
            tr -d '\r' | sed -n 's/^redis_version://p') || true
    fi
    echo "${v:-(version unknown)}"
}

# dsn_reachable DSN: true if the address in a go-sql-driver DSN
# (user:pw@tcp(host:port)/db?...) accepts connections.
dsn_reachable() {
    local dsn=$1 addr host port
    if [[ $dsn =~ @unix\(([^\)]*)\) ]]; then
        [[ -S ${BASH_REMATCH[1]} ]]
        return
    fi
    [[ $dsn =~ @tcp\(([^\)]*)\) ]] || return 1
    addr=${BASH_REMATCH[1]}
    case $addr in
        \[*\]:*) host=${addr%]:*}; host=${host#[}; port=${addr##*]:} ;;
        \[*\]) host=${addr#[}; host=${host%]}; port=3306 ;;
        *:*) host=${addr%:*}; port=${addr##*:} ;;
        *) host=$addr; port=3306 ;;
    esac
    tcp_open "${host:-127.0.0.1}" "${port:-3306}"
}

# dsn_address DSN: the part between the parentheses, for messages.
dsn_address() {
    [[ $1 =~ @[a-z]+\(([^\)]*)\) ]] && echo "${BASH_REMATCH[1]}" || echo "?"
}

# ---------------------------------------------------------------------------
# Decide what we have to start ourselves.

NEED_REDIS=1
NEED_MYSQL=1
REDIS_DESC=""
MYSQL_DESC=""

if [[ -n ${REDIS_URL:-} ]]; then
    if redis_ping "$REDIS_URL"; then
        NEED_REDIS=""
        REDIS_DESC="redis $(redis_version "$REDIS_URL") at $REDIS_URL (existing)"
    else
        log "REDIS_URL=$REDIS_URL does not answer PING; starting a temporary redis"
    fi
fi
if [[ -n ${MYSQL_DSN:-} ]]; then
    if dsn_reachable "$MYSQL_DSN"; then
        NEED_MYSQL=""
        MYSQL_DESC="mysql at $(dsn_address "$MYSQL_DSN") (existing)"
    else
        log "MYSQL_DSN address $(dsn_address "$MYSQL_DSN") is not reachable; starting a temporary mariadb"
    fi
fi

# ---------------------------------------------------------------------------
# Install missing binaries.

# MariaDB's server used to be called mysqld; accept that name only if it
# really is MariaDB (Oracle MySQL has no mariadb-install-db and other auth).
MYSQLD=""
if have mariadbd; then
    MYSQLD=mariadbd
elif have mysqld && mysqld --version 2>/dev/null | grep -qi mariadb; then
    MYSQLD=mysqld
fi

# apt_install PKG...: apt-get install, without letting the packages start
# their system services. Docker images ship a policy-rc.d that forbids
# starting services; if there is none, add one for the duration (and remove
# it in cleanup) so installing mariadb-server does not leave a mariadbd
# running on port 3306.
apt_install() {
    have apt-get || die "missing $*, and no apt-get to install them"
    if [[ $(id -u) -ne 0 && -z $SUDO ]]; then
        die "missing $*; need root or sudo to install them"
    fi
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod 755 /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=1
    fi
    log "installing $* (apt-get)"
    # apt's chatter goes to stderr so CMD's stdout stays clean.
    $SUDO apt-get update >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "$@" >&2
    if [[ -n $POLICY_RC_CREATED ]]; then
        $SUDO rm -f /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=""
    fi
}

PKGS=()
# redis-server is installed even when REDIS_URL answers: the Redis Cluster
# test starts cluster-mode redis-server processes of its own.
if ! have redis-server; then
    PKGS+=(redis-server)
fi
# promtool checks the metrics the processes serve and the alert rules of
# deployments/k8s/monitoring (those tests skip without it). Debian ships it
# in package prometheus; its service is not started (see apt_install).
if ! have promtool; then
    PKGS+=(prometheus)
fi
# chromium drives the console's browser tests (package console), which skip
# without it.
if ! have chromium && ! have chromium-browser; then
    PKGS+=(chromium)
fi
if [[ -n $NEED_MYSQL ]]; then
    if [[ -z $MYSQLD ]] ||
        ! { have mariadb-install-db || have mysql_install_db; } ||
        ! { have mariadb || have mysql; }; then
        PKGS+=(mariadb-server mariadb-client)
    fi
fi
if [[ ${#PKGS[@]} -gt 0 ]]; then
    apt_install "${PKGS[@]}"
    have mariadbd && MYSQLD=mariadbd
    [[ -z $MYSQLD ]] && have mysqld && MYSQLD=mysqld
fi

# ---------------------------------------------------------------------------
# Helpers for starting our own servers.

WHOAMI=$(id -un)

# port_free PORT: nothing listens on 127.0.0.1:PORT. A connect attempt is
# the dependency-free check; ss also sees listeners that refuse loopback.
port_free() {
    tcp_open 127.0.0.1 "$1" && return 1
    if have ss && [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; then
        return 1
    fi
    return 0
}

# free_port START: print the first free port at or after START.
free_port() {
    local p
    for ((p = $1; p < $1 + 1000; p++)); do
        if port_free "$p"; then
            echo "$p"
            return 0
        fi
    done
    die "no free port in $1..$(($1 + 999))"
}

# show_log FILE: last lines of a server log, to explain a failed start.
show_log() {
    log "---- tail of $1 ----"
    tail -n 30 "$1" >&2 || true
}

# Another process (e.g. a parallel testenv.sh) can take a port between our
# check and the server's bind. Both servers then exit with "Address already
# in use", and we simply retry on the next free port.
is_bind_error() {
    grep -qiE 'address already in use|bind on tcp/ip port' "$1"
}

# keep_supported HELP OPTION... : set KEPT to the OPTIONs that the --help
# text HELP lists, and add the others to DROPPED, so that one script works
# across server versions (e.g. --skip-test-db only exists since MariaDB 10.5).
keep_supported() {
    local help=$1 opt name
    shift
    KEPT=()
    for opt in "$@"; do
        name=${opt#--}
        name=${name%%=*}
        name=${name#skip-}
        if grep -qE -- "^ +(-[[:alnum:]], )?--(skip-)?${name}([ =[]|$)" <<<"$help"; then
            KEPT+=("$opt")
        else
            DROPPED+=("$opt")
        fi
    done
}
KEPT=()
DROPPED=()

# ---------------------------------------------------------------------------
# Start our own servers.

if [[ -n $NEED_REDIS || -n $NEED_MYSQL ]]; then
    # Short path: unix socket paths are limited to ~107 bytes.
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/chime-testenv.XXXXXX")
fi

# Initialise the MariaDB data directory in the background: it takes a few
# seconds, which overlap with starting redis.
MYSQL_CLI=""
if [[ -n $NEED_MYSQL ]]; then
    [[ -n $MYSQLD ]] || die "no mariadbd/mysqld found"
    if have mariadb-install-db; then INSTALL_DB=mariadb-install-db
    elif have mysql_install_db; then INSTALL_DB=mysql_install_db
    else die "no mariadb-install-db/mysql_install_db found"
    fi
    if have mariadb; then MYSQL_CLI=mariadb; else MYSQL_CLI=mysql; fi

    help=$("$INSTALL_DB" --help 2>&1 || true)
    # --no-defaults: ignore /etc/mysql/*.cnf, which point at the system
    #   datadir and socket. (Must be the first argument.)
    # --auth-root-authentication-method=normal: root@localhost with an empty
    #   password instead of unix_socket auth, which only lets the OS user
    #   "root" in.
    # --skip-test-db: no test database and no anonymous users.
    keep_supported "$help" \
        --auth-root-authentication-method=normal --skip-test-db
    spawn "$TMP/install-db.log" \
        "$INSTALL_DB" --no-defaults --datadir="$TMP/mysql" --user="$WHOAMI" \
        "${KEPT[@]}"
    INSTALL_PID=$SPAWNED
fi

if [[ -n $NEED_REDIS ]]; then
    REDIS_VERSION=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
    if [[ ${REDIS_VERSION%%.*} -lt 7 ]] 2>/dev/null; then
        log "warning: redis-server is $REDIS_VERSION, the tests expect redis 7"
    fi
    port=16379
    for ((attempt = 1; ; attempt++)); do
        port=$(free_port "$port")
        # No persistence (--save '' / --appendonly no): tests want speed, and
        # the data dies with $TMP anyway. --daemonize no keeps it our child so
        # cleanup can stop and reap it. --set-max-intset-entries 4096 is the
        # setting docs/operations.md recommends: Chime's groups follow it
        # (3,200 integer-like IDs each instead of 400). So is
        # --rdbcompression no: workers read groups with DUMP, which
        # otherwise tries LZF on every intset (which hardly compresses).
        # (Create the log first: the loop below may read it before the
        # background job has opened it.)
        : >"$TMP/redis.log"
        spawn "$TMP/redis.log" \
            redis-server --bind 127.0.0.1 --port "$port" \
            --save '' --appendonly no --dir "$TMP" --daemonize no \
            --set-max-intset-entries 4096 --rdbcompression no
        REDIS_PID=$SPAWNED
        # Wait for the log line rather than a PING: a PING could be answered
        # by whoever else got the port first.
        ready=""
        for ((i = 0; i < STARTUP_TIMEOUT * 10; i++)); do
            if grep -q 'Ready to accept connections' "$TMP/redis.log"; then
                ready=1
                break
            fi
            kill -0 "$REDIS_PID" 2>/dev/null || break
            sleep 0.1
        done
        [[ -n $ready ]] && break
        stop_group "$REDIS_PID"
        REDIS_PID=""
        if is_bind_error "$TMP/redis.log" && ((attempt < PORT_ATTEMPTS)); then
            port=$((port + 1))
            continue
        fi
        show_log "$TMP/redis.log"
        die "redis-server did not start"
    done
    export REDIS_URL="redis://127.0.0.1:$port/0"
    REDIS_DESC="redis $REDIS_VERSION on 127.0.0.1:$port (temporary)"
fi

if [[ -n $NEED_MYSQL ]]; then
    if ! wait "$INSTALL_PID"; then
        INSTALL_PID=""
        show_log "$TMP/install-db.log"
        die "$INSTALL_DB failed"
    fi
    INSTALL_PID=""

    help=$("$MYSQLD" --no-defaults --user="$WHOAMI" --verbose --help 2>/dev/null || true)
    # Test-speed settings; durability does not matter for a throwaway
    # database:
    #   flush-log-at-trx-commit=2 / doublewrite=0: no fsync per commit/page
    #   skip-log-bin: no binary log
    #   buffer-pool 512M: keep the test data set in memory
    #   log-file-size 512M: a bulk registration of millions of rows writes
    #     redo for every row and index entry; with the 96M default the redo
    #     log fills often and writes stall while InnoDB flushes pages to
    #     make room
    #   max-connections=500: parallel test packages each open a pool
    # Correctness settings:
    #   skip-name-resolve: no reverse-DNS lookup per connection (slow or
    #     hanging in sandboxes); 127.0.0.1 then matches root@127.0.0.1.
    #   character-set/collation: --no-defaults drops Debian's config, whose
    #     utf8mb4 default would otherwise become latin1.
    keep_supported "$help" \
        --innodb-flush-log-at-trx-commit=2 \
        --skip-log-bin \
        --innodb-buffer-pool-size=512M \
        --innodb-log-file-size=512M \
        --max-connections=500 \
        --innodb-doublewrite=0 \
        --skip-name-resolve \
        --character-set-server=utf8mb4 \
        --collation-server=utf8mb4_general_ci
    server_opts=("${KEPT[@]}")

    sql() { "$MYSQL_CLI" --no-defaults --socket="$TMP/mysql.sock" -uroot -N -B "$@"; }

    port=13306
    for ((attempt = 1; ; attempt++)); do
        port=$(free_port "$port")
        : >"$TMP/mysql.log"
        # --user is required when running as root (mariadbd refuses to run
        # as root otherwise) and harmless otherwise.
        spawn "$TMP/mysql.log" \
            "$MYSQLD" --no-defaults --datadir="$TMP/mysql" \
            --socket="$TMP/mysql.sock" --pid-file="$TMP/mysql.pid" \
            --log-error="$TMP/mysql.log" --tmpdir="$TMP" \
            --port="$port" --bind-address=127.0.0.1 --user="$WHOAMI" \
            "${server_opts[@]}"
        MYSQL_PID=$SPAWNED
        # Readiness is checked over our own socket, which nobody else can
        # answer; mariadbd aborts if it cannot bind the TCP port, so a live
        # server also owns the port.
        ready=""
        for ((i = 0; i < STARTUP_TIMEOUT * 10; i++)); do
            if [[ -S $TMP/mysql.sock ]] && sql -e 'SELECT 1' >/dev/null 2>&1; then
                ready=1
                break
            fi
            kill -0 "$MYSQL_PID" 2>/dev/null || break
            sleep 0.1
        done
        [[ -n $ready ]] && break
        stop_group "$MYSQL_PID"
        MYSQL_PID=""
        if is_bind_error "$TMP/mysql.log" && ((attempt < PORT_ATTEMPTS)); then
            port=$((port + 1))
            continue
        fi
        show_log "$TMP/mysql.log"
        die "$MYSQLD did not start"
    done

    # Tests connect over TCP as root without a password. Make sure every
    # host form root can arrive as has that, with full rights (tests create
    # and drop databases).
    sql <<'SQL'
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
CREATE USER IF NOT EXISTS 'root'@'localhost' IDENTIFIED BY '';
CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY '';
GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL ON *.* TO 'root'@'localhost' WITH GRANT OPTION;
GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;
CREATE DATABASE IF NOT EXISTS chime;
SQL
    # Prove the exact path the tests use: TCP, root, no password.
    "$MYSQL_CLI" --no-defaults --protocol=tcp -h127.0.0.1 -P"$port" -uroot \
        -e 'USE chime' >/dev/null 2>>"$TMP/mysql.log" ||
        { show_log "$TMP/mysql.log"; die "cannot log in as root over TCP"; }

    MYSQL_VERSION=$(sql -e 'SELECT VERSION()')
    export MYSQL_DSN="root@tcp(127.0.0.1:$port)/chime?parseTime=true&loc=UTC"
    MYSQL_DESC="mariadb ${MYSQL_VERSION%%-*} on 127.0.0.1:$port (temporary)"
fi

if [[ ${#DROPPED[@]} -gt 0 ]]; then
    log "options not supported by the installed version, dropped: ${DROPPED[*]}"
fi
log "$REDIS_DESC, $MYSQL_DESC"

# ---------------------------------------------------------------------------
# Run CMD in the foreground (so it keeps the terminal and stdin) and pass its
# status on; the EXIT trap stops the servers afterwards.
rc=0
"$@" || rc=$?
exit "$rc"
