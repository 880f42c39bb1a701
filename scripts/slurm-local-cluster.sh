#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine: munge, MariaDB + slurmdbd (for sacct),
# slurmctld and slurmd. Idempotent; all state under one scratch folder; stop ends what start
# started, by pid.
#
#   scripts/slurm-local-cluster.sh start|stop|status
#
# Needs root and apt (Debian 12's slurm-wlm 22.05). STATE defaults to /var/tmp/shardrun-slurm.
set -euo pipefail

STATE=${SHARDRUN_SLURM_STATE:-/var/tmp/shardrun-slurm}
CLUSTER=shardrun
DB_PORT=${SHARDRUN_SLURM_DB_PORT:-33061}
DB_PASS=shardrun-local-only
HOST=$(hostname -s)

say() { echo "slurm-local-cluster: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_packages() {
  local missing=()
  command -v slurmctld >/dev/null || missing+=(slurm-wlm)
  command -v munged >/dev/null || missing+=(munge)
  command -v slurmdbd >/dev/null || missing+=(slurmdbd)
  command -v mariadbd >/dev/null || missing+=(mariadb-server)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

start_munge() {
  [ -f /etc/munge/munge.key ] || { /usr/sbin/mungekey --create 2>/dev/null || /usr/sbin/create-munge-key -f; }
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
  mkdir -p /run/munge; chown munge:munge /run/munge
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return; sleep 0.1; done
  die "munged did not start"
}

start_mariadb() {
  local data=$STATE/mysql
  if [ ! -d "$data/mysql" ]; then
    mkdir -p "$data"
    mariadb-install-db --user=root --datadir="$data" --auth-root-authentication-method=socket \
      >"$STATE/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed (see $STATE/log)"
  fi
  if ! alive "$STATE/run/mariadbd.pid"; then
    mariadbd --user=root --datadir="$data" --bind-address=127.0.0.1 --port="$DB_PORT" \
      --socket="$STATE/run/mysqld.sock" --pid-file="$STATE/run/mariadbd.pid" \
      --log-error="$STATE/log/mariadbd.log" --skip-name-resolve >/dev/null 2>&1 &
    for _ in $(seq 100); do [ -S "$STATE/run/mysqld.sock" ] && break; sleep 0.1; done
    [ -S "$STATE/run/mysqld.sock" ] || die "mariadbd did not start (see $STATE/log/mariadbd.log)"
  fi
  mariadb --socket="$STATE/run/mysqld.sock" -uroot <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
}

write_configs() {
  mkdir -p /etc/slurm
  cat >/etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
LogFile=$STATE/log/slurmdbd.log
PidFile=$STATE/run/slurmdbd.pid
CONF
  chmod 600 /etc/slurm/slurmdbd.conf
  cat >/etc/slurm/slurm.conf <<CONF
# Written by shardrun's scripts/slurm-local-cluster.sh: a single-node test cluster.
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
KillWait=5
InactiveLimit=0
MinJobAge=300
MaxArraySize=1001
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
SchedulerParameters=sched_interval=2
NodeName=$HOST CPUs=$(nproc) RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
  [ "$(id -u)" = 0 ] || die "needs root (to install packages and run the daemons)"
  mkdir -p "$STATE"/{run,log,ctld,d}
  install_packages
  start_munge
  start_mariadb
  write_configs
  if ! alive "$STATE/run/slurmdbd.pid"; then
    slurmdbd
    for _ in $(seq 100); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.2; done
  fi
  sacctmgr -n list cluster format=cluster | grep -qw "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
  alive "$STATE/run/slurmctld.pid" || slurmctld
  alive "$STATE/run/slurmd.pid" || slurmd
  for _ in $(seq 100); do
    state=$(sinfo -h -n "$HOST" -o %t 2>/dev/null || true)
    case "$state" in idle*|mix*|alloc*) say "up: node $HOST is $state"; return 0;; esac
    sleep 0.2
  done
  scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
  sleep 1
  sinfo -h -n "$HOST" -o %t | grep -qE 'idle|mix|alloc' || die "node not idle: $(sinfo 2>&1)"
  say "up"
}

stop() {
  scontrol shutdown >/dev/null 2>&1 || true
  for name in slurmd slurmctld slurmdbd mariadbd; do
    if alive "$STATE/run/$name.pid"; then
      kill "$(cat "$STATE/run/$name.pid")" 2>/dev/null || true
    fi
  done
  for _ in $(seq 50); do
    any=0
    for name in slurmd slurmctld slurmdbd mariadbd; do alive "$STATE/run/$name.pid" && any=1; done
    [ $any = 0 ] && break; sleep 0.2
  done
  alive /run/munge/munged.pid && kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
  say "stopped"
}

status() {
  for name in slurmctld slurmd slurmdbd mariadbd; do
    if alive "$STATE/run/$name.pid"; then echo "$name: running"; else echo "$name: stopped"; fi
  done
  sinfo 2>&1 || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
