#!/usr/bin/env bash
# submit.sh SHARDS RESULTS DB [sbatch options...]: submit a blocksim
# campaign as a Slurm job array of SHARDS tasks, and a merge job that runs
# once every task has ended; prints both job ids (array first).
#
# Environment: BLOCKSIM (default: the blocksim next to this checkout's
# build/release), PROPERTIES, TRIALS or TIME, SEED, MUTANT (see
# campaign.sbatch). RESULTS and DB must be on a file system every node
# shares. Extra arguments go to both sbatch calls (e.g. --partition=P).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 3 ] || { echo "usage: submit.sh SHARDS RESULTS DB [sbatch options...]" >&2; exit 2; }
shards=$1 results=$2 db=$3
shift 3
case "$shards" in ''|*[!0-9]*|0) echo "submit.sh: SHARDS: expected a positive count" >&2
                                 exit 2 ;; esac
export BLOCKSIM=${BLOCKSIM:-$here/../../build/release/blocksim}
export RESULTS=$results DB=$db
mkdir -p "$results"
array=$(sbatch --parsable --array=0-$((shards - 1)) --export=ALL \
        --output="$results/slurm-%A_%a.out" "$@" "$here/campaign.sbatch")
merge=$(sbatch --parsable --dependency=afterany:"$array" --export=ALL \
        --output="$results/slurm-merge-%j.out" "$@" "$here/merge.sbatch")
echo "$array $merge"
