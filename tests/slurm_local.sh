# slurm_local.sh (sourced): a single-node Slurm cluster on localhost for the tests, from
# Debian's slurm-wlm and munge, in a directory of its own: munged on a private socket, slurmctld
# and slurmd on private ports (not 6817/6818, so a real cluster's daemons are left alone), one
# node with this machine's cores, no cgroups (proctrack/linuxproc, task/none: containers often
# lack a writable cgroup tree). As root only (the daemons run as root).
#   slurm_local_start DIR   starts it (exports SLURM_CONF); returns 1 and prints why on failure
#   slurm_local_stop        stops the daemons it started, by their pid files
SLURM_LOCAL_DIR=
slurm_local_start() {
    local d=$1 host cpus mem i
    SLURM_LOCAL_DIR=$d
    mkdir -p "$d/state" "$d/spool" "$d/log" "$d/munge"
    chmod 700 "$d/munge"
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
    [ -r /etc/munge/munge.key ] || { echo "slurm_local: /etc/munge/munge.key missing (apt-get install munge)"; return 1; }
    munged --force --socket="$d/munge/munge.socket" --pid-file="$d/munge/munged.pid" \
        --log-file="$d/log/munged.log" --seed-file="$d/munge/seed" --key-file=/etc/munge/munge.key ||
        { echo "slurm_local: munged did not start: $(tail -2 "$d/log/munged.log" 2>/dev/null)"; return 1; }
    cat >"$d/slurm.conf" <<EOF
ClusterName=routelab-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=16917
SlurmdPort=16918
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$d/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/builtin
ReturnToService=2
MpiDefault=none
KillWait=10
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF=$d/slurm.conf
    slurmctld -f "$SLURM_CONF" || { echo "slurm_local: slurmctld did not start: $(tail -3 "$d/log/slurmctld.log" 2>/dev/null)"; return 1; }
    slurmd -f "$SLURM_CONF" || { echo "slurm_local: slurmd did not start: $(tail -3 "$d/log/slurmd.log" 2>/dev/null)"; return 1; }
    for i in $(seq 1 60); do
        sinfo -h -o '%T' 2>/dev/null | grep -qE '^idle' && return 0
        sleep 0.5
    done
    echo "slurm_local: the node did not become idle in 30 s: $(sinfo -h 2>&1 | head -2); slurmd: $(tail -2 "$d/log/slurmd.log" 2>/dev/null)"
    return 1
}
slurm_local_stop() {
    local d=$SLURM_LOCAL_DIR f
    [ -n "$d" ] || return 0
    for f in "$d/slurmd.pid" "$d/slurmctld.pid" "$d/munge/munged.pid"; do
        [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null
    done
    sleep 1
    SLURM_LOCAL_DIR=
}
