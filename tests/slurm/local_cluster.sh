#!/usr/bin/env bash
# A one-node SLURM cluster on 127.0.0.1 for testing profiles/slurm (Debian 12, slurm-wlm 22.05).
#
#   tests/slurm/local_cluster.sh start   write configs, start daemons (SOP_SLURM_INSTALL=1: first
#                                        install missing packages with apt-get, system-wide)
#   tests/slurm/local_cluster.sh stop    stop the daemons this script started, by their PIDs
#   tests/slurm/local_cluster.sh env     print the SLURM_CONF export that clients need
#
# Everything lives in one state folder (SOP_SLURM_DIR, default /tmp/sop-slurm): slurm.conf, the
# munge key and socket, spool folders, logs and PID files. The one change outside it is the link
# /etc/slurm/slurm.conf -> $SOP_SLURM_DIR/slurm.conf, made only where no slurm.conf exists and
# removed by `stop`: srun inside a job finds its configuration there, because the SLURM executor
# plugin clears SLURM_* variables (SLURM_CONF too) in the job's environment. A machine that
# already has a slurm.conf is left alone and the script refuses to start.
# There is no slurmdbd: accounting is off, so sacct has nothing and status comes from squeue.
# Needs root (slurmd runs jobs as the submitting user; the daemons run as root here).
set -euo pipefail

STATE=${SOP_SLURM_DIR:-/tmp/sop-slurm}
CONF=$STATE/slurm.conf
SYSTEM_CONF=/etc/slurm/slurm.conf
# Ports other than SLURM's defaults (6817/6818), so a real installation is not disturbed.
CTLD_PORT=${SOP_SLURM_CTLD_PORT:-16817}
SLURMD_PORT=${SOP_SLURM_SLURMD_PORT:-16818}

log() { echo "local_cluster: $*" >&2; }

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v sbatch >/dev/null && command -v munged >/dev/null; then
        return 0
    fi
    # System-wide packages are installed only when asked for.
    if [ "${SOP_SLURM_INSTALL:-0}" != "1" ]; then
        log "SLURM is not installed; install slurm-wlm munge slurm-client, or set SOP_SLURM_INSTALL=1 to let this script do it with apt-get"
        exit 3
    fi
    command -v apt-get >/dev/null || { log "apt-get not found; install slurm-wlm munge slurm-client"; exit 3; }
    log "installing slurm-wlm munge slurm-client (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >"$STATE/apt.log" 2>&1 || { log "apt-get update failed, see $STATE/apt.log"; exit 3; }
    apt-get install -y -qq slurm-wlm munge slurm-client >>"$STATE/apt.log" 2>&1 \
        || { log "apt-get install failed, see $STATE/apt.log"; exit 3; }
}

write_conf() {
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    # Half the RAM: the node must not promise memory the machine needs for itself.
    mem=$(($(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 / 2))
    cat >"$CONF" <<EOF
# Written by tests/slurm/local_cluster.sh: one node on 127.0.0.1, daemons started by hand.
ClusterName=sopcosmo
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket
MpiDefault=none
# No cgroups in containers: track processes by /proc and bind no tasks.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
StateSaveLocation=$STATE/spool/slurmctld
SlurmdSpoolDir=$STATE/spool/slurmd
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, every job would ask for the whole node's memory and they would run one by one.
DefMemPerCPU=500
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
InactiveLimit=0
KillWait=5
# Finished jobs stay visible to squeue for 5 min: snakemake reads their final state from there.
MinJobAge=300
SlurmctldTimeout=60
SlurmdTimeout=60
Waittime=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    chmod 644 "$CONF"
}

start_munge() {
    local dir=$STATE/munge
    mkdir -p "$dir"
    chown munge:munge "$dir"
    chmod 755 "$dir"
    if [ ! -s "$dir/munge.key" ]; then
        dd if=/dev/urandom of="$dir/munge.key" bs=1 count=128 status=none
        chown munge:munge "$dir/munge.key"
        chmod 400 "$dir/munge.key"
    fi
    runuser -u munge -- /usr/sbin/munged --socket="$dir/munge.socket" \
        --key-file="$dir/munge.key" --pid-file="$dir/munged.pid" \
        --log-file="$dir/munged.log" --seed-file="$dir/munged.seed"
    munge -n --socket="$dir/munge.socket" | unmunge --socket="$dir/munge.socket" >/dev/null
}

link_conf() {
    if [ -e "$SYSTEM_CONF" ] && [ "$(readlink "$SYSTEM_CONF")" != "$CONF" ]; then
        log "$SYSTEM_CONF exists and is not ours; not touching a real SLURM setup"
        exit 3
    fi
    mkdir -p "$(dirname "$SYSTEM_CONF")"
    ln -sfn "$CONF" "$SYSTEM_CONF"
}

start() {
    if [ -s "$STATE/run/slurmctld.pid" ] && kill -0 "$(cat "$STATE/run/slurmctld.pid")" 2>/dev/null; then
        log "already running (state in $STATE)"
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    local t0
    t0=$(date +%s.%N)
    [ "$(id -u)" -eq 0 ] || { log "must run as root"; exit 3; }
    # Start from a clean state: leftovers of a crashed run (a munged still holding its socket,
    # old job records) would confuse the test.
    stop >/dev/null 2>&1 || true
    rm -rf "$STATE/spool" "$STATE/log" "$STATE/run"
    mkdir -p "$STATE/run" "$STATE/spool/slurmctld" "$STATE/spool/slurmd" "$STATE/log"
    install_packages
    write_conf
    link_conf
    start_munge
    export SLURM_CONF=$CONF
    # -c: clear any saved jobs; -f: this config, not /etc/slurm/slurm.conf.
    /usr/sbin/slurmctld -c -f "$CONF"
    /usr/sbin/slurmd -f "$CONF"
    local i
    for i in $(seq 1 120); do
        sinfo -h -N -o '%T' 2>/dev/null | grep -q '^idle' && break
        sleep 0.25
    done
    if ! sinfo -h -N -o '%T' 2>/dev/null | grep -q '^idle'; then
        log "node did not become idle; logs in $STATE/log"
        sinfo -N -l >&2 || true
        tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
        stop
        exit 1
    fi
    sinfo >&2
    log "ready in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
    echo "export SLURM_CONF=$CONF"
}

# Stop one daemon by the PID in its file, waiting up to 20 s.
stop_pid() {
    local file=$1 pid i
    [ -s "$file" ] || return 0
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for i in $(seq 1 80); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "WARNING: $file ($pid) still running"
            return 1
        fi
        log "stopped $(basename "$file" .pid) ($pid)"
    fi
    rm -f "$file"
}

stop() {
    local rc=0
    # Reverse order of start: node, controller, then munge.
    stop_pid "$STATE/run/slurmd.pid" || rc=1
    stop_pid "$STATE/run/slurmctld.pid" || rc=1
    stop_pid "$STATE/munge/munged.pid" || rc=1
    if [ "$(readlink "$SYSTEM_CONF" 2>/dev/null)" = "$CONF" ]; then
        rm -f "$SYSTEM_CONF"
    fi
    return $rc
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *)
        echo "usage: $0 {start|stop|env}" >&2
        exit 2
        ;;
esac
