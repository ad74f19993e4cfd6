#!/usr/bin/env bash
# A one-node Slurm cluster on localhost for the workflow's Slurm test (tests/test_slurm.py).
#   .ci/slurm-cluster.sh up     install slurm-wlm + munge (Debian) if needed, start munged, slurmctld, slurmd
#   .ci/slurm-cluster.sh down   stop the daemons that `up` started (recorded in $state/started)
# Needs root. Without accounting (no slurmdbd) sacct cannot report job states, so the test polls
# squeue instead; MinJobAge keeps finished jobs visible to squeue long enough for that.
set -euo pipefail
state=/var/run/vlmflow-slurm
host=$(hostname -s)

# start NAME PIDFILE CMD...: run CMD unless NAME already runs; record what was started for `down`
start() {
  local name=$1 pidfile=$2
  shift 2
  pgrep -x "$name" >/dev/null && return 0
  "$@"
  echo "$name $pidfile" >> "$state/started"
}

up() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q slurm-wlm munge >/dev/null; }
  fi
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge "$state"
  chown munge:munge /run/munge
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey -c -f -k /etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  fi
  start munged /run/munge/munged.pid runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2048 ))
  cat > /etc/slurm/slurm.conf <<CONF
ClusterName=vlmflow-ci
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmUser=root
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=600
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host CPUs=$(nproc) RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  start slurmctld "$state/slurmctld.pid" slurmctld
  start slurmd "$state/slurmd.pid" slurmd
  for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      sinfo
      return 0
    fi
    sleep 1
  done
  echo "slurm did not come up; see /var/log/slurm/" >&2
  return 1
}

down() {
  [ -f "$state/started" ] || return 0
  local name pidfile pid pids=()
  while read -r name pidfile; do  # only a live process of the recorded name: a stale pid may be reused
    pid=$(cat "$pidfile" 2>/dev/null) || continue
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] && kill "$pid" && pids+=("$pid")
  done < <(tac "$state/started")
  for pid in "${pids[@]}"; do  # wait (up to 30 s each) until they have exited
    for _ in $(seq 30); do [ -d "/proc/$pid" ] || break; sleep 1; done
  done
  rm -f "$state/started"
}

"${1:?usage: $0 up|down}"
