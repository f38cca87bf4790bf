#!/usr/bin/env bash
# slurm_test.sh BLOCKSIM: a single-node Slurm cluster on this machine, from
# Debian's packages (munge, slurmctld, slurmd) with every file in one
# temporary directory; a four-task campaign array with a planted bug and
# its merge job submitted by scripts/slurm/submit.sh; the merged failures
# must equal those of a local run of the same four shards. Everything is
# torn down at the end, pass or fail. Skips (exit 0, a SKIP line) without
# the packages or as another user than root.
set -u
bin=$(readlink -f "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
for t in munged slurmctld slurmd sbatch sinfo; do
    command -v "$t" >/dev/null 2>&1 || { echo "slurm test: SKIP ($t not found)"; exit 0; }
done
[ "$(id -u)" = 0 ] || { echo "slurm test: SKIP (needs root for slurmd)"; exit 0; }

tmp=$(mktemp -d /tmp/blocksim-slurm.XXXXXX)
pids=()
teardown() {
    for f in "$tmp"/run/*.pid; do
        [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null
    done
    sleep 0.5
    for f in "$tmp"/run/*.pid; do
        [ -s "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap teardown EXIT
fail() { echo "slurm test: FAIL: $*" >&2; for f in "$tmp"/log/*; do echo "== $f" >&2; tail -5 "$f" >&2; done; exit 1; }

mkdir -p "$tmp"/{munge,run,log,state,spool,results} && chmod 700 "$tmp/munge"
head -c 1024 /dev/urandom >"$tmp/munge/key" && chmod 600 "$tmp/munge/key"
munged --key-file="$tmp/munge/key" --socket="$tmp/run/munge.sock" \
    --pid-file="$tmp/run/munged.pid" --log-file="$tmp/log/munged.log" \
    --seed-file="$tmp/munge/seed" --force || fail "munged did not start"
node=$(hostname -s)
cat >"$tmp/slurm.conf" <<CONF
ClusterName=blocksim
SlurmctldHost=$node
AuthType=auth/munge
AuthInfo=socket=$tmp/run/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/run/slurmctld.pid
SlurmdPidFile=$tmp/run/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
NodeName=$node CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$tmp/slurm.conf
slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start"
slurmd -f "$SLURM_CONF" || fail "slurmd did not start"
for _ in $(seq 1 100); do
    sinfo -h -o %t 2>/dev/null | grep -q idle && break
    sleep 0.2
done
sinfo -h -o %t | grep -q idle || fail "the node never came up"

# The campaign: a planted bug, four shards, then the merge.
export BLOCKSIM=$bin PROPERTIES="backup-point-in-time colo-view" TRIALS=400 SEED=3
export MUTANT=backup-cbw-late
ids=$(bash "$here/scripts/slurm/submit.sh" 4 "$tmp/results" "$tmp/db") || fail "submit"
merge=${ids#* }
for _ in $(seq 1 600); do
    [ -z "$(squeue -h -j "$merge" 2>/dev/null)" ] && break
    sleep 0.2
done
[ -s "$tmp/db/index.json" ] || fail "the merge job wrote no database"
cat "$tmp"/results/slurm-merge-*.out

# The same four shards locally, merged the same way.
mkdir -p "$tmp/local"
for i in 0 1 2 3; do
    "$bin" check $PROPERTIES --trials $TRIALS --seed $SEED --shard $i/4 --quiet \
        --mutant $MUTANT --jsonl "$tmp/local/shard-$i.jsonl" --out "$tmp/local/out-$i" \
        >/dev/null
done
"$bin" campaign merge "$tmp/local" --db "$tmp/ldb" >/dev/null || fail "local merge"
sig() { python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
for f in sorted(d["failures"], key=lambda f: (f["property"], f["digest"])):
    print(f["property"], f["kind"], f["digest"], f["seed"], f["trial"], f["occurrences"])
for p, s in sorted(d["properties"].items()):
    print(p, s["trials"], s["failures"])' "$1"; }
sig "$tmp/db/index.json" >"$tmp/slurm.sig"
sig "$tmp/ldb/index.json" >"$tmp/local.sig"
diff "$tmp/slurm.sig" "$tmp/local.sig" >/dev/null ||
    { diff "$tmp/slurm.sig" "$tmp/local.sig"; fail "the cluster's failures differ from a local run's"; }
n=$(grep -c . "$tmp/slurm.sig")
echo "slurm test: a 4-task array and its merge on a single-node cluster: the merged" \
     "database equals a local run's ($(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["failures"]))' "$tmp/db/index.json") distinct failure(s), $n lines compared)"
