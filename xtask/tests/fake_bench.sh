#!/bin/sh
# A fake `bench` for the xtask tests: checks its arguments like the real one's contract, then
# prints one schema-1 JSON line built from them (progress on stderr). Files beside this script
# steer it: `fail-<engine>-<threads>` makes that cell exit 3, `sleep` holds seconds to sleep,
# and every call is appended to `calls.log`.
set -eu
engine= policy= threads= txns= ops= vsize= keys= dur= dir= seed=
while [ $# -gt 0 ]; do
  case "$1" in
    --engine) engine=$2 ;;
    --policy) policy=$2 ;;
    --threads) threads=$2 ;;
    --txns) txns=$2 ;;
    --ops-per-txn) ops=$2 ;;
    --value-size) vsize=$2 ;;
    --keys) keys=$2 ;;
    --durability) dur=$2 ;;
    --dir) dir=$2 ;;
    --seed) seed=$2 ;;
    *) echo "fake bench: unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done
here=$(dirname "$0")
echo "$engine ${policy:--} $threads $dur $keys" >> "$here/calls.log"
echo "fake bench: $engine ${policy:--} T=$threads $dur" >&2
[ -d "$dir" ] || { echo "fake bench: --dir $dir is not a directory" >&2; exit 4; }
: > "$dir/data.file"
if [ -f "$here/fail-$engine-$threads" ]; then
  echo "fake bench: told to fail" >&2
  exit 3
fi
if [ -f "$here/sleep" ]; then sleep "$(cat "$here/sleep")"; fi
n_ops=$((threads * txns * ops))
commits=$((threads * txns))
rate=$((100000 * threads + ${#engine} * 1000 + ${#policy} * 100))
case "$policy" in
  "") pjson=null; syncs=null; spc=null; calls=5 ;;
  per-page) pjson="\"$policy\""; syncs=$commits; spc=1.0; calls=257 ;;
  *) pjson="\"$policy\""; syncs=$commits; spc=1.0; calls=2 ;;
esac
bytes=$((n_ops * vsize))
printf '{"schema":1,"engine":"%s","policy":%s,"threads":%s,"txns":%s,"ops_per_txn":%s,' \
  "$engine" "$pjson" "$threads" "$txns" "$ops"
printf '"value_size":%s,"keys":"%s","durability":"%s","seed":%s,"ops":%s,"secs":0.5,' \
  "$vsize" "$keys" "$dur" "$seed" "$n_ops"
printf '"ops_per_sec":%s,"commits":%s,"write_calls":%s,"vectored_calls":0,"sync_calls":%s,' \
  "$rate" "$commits" "$((calls * commits))" "$syncs"
printf '"write_calls_per_commit":%s,"syscalls_per_commit":%s.5,"syncs_per_commit":%s,' \
  "$calls" "$calls" "$spc"
printf '"bytes_written":%s,"bytes_inserted":%s,"write_amplification":1.25,' "$((bytes + bytes / 4))" "$bytes"
printf '"p50_commit_us":120.0,"p99_commit_us":480.0,"peak_rss_kb":20480,"syscall_source":"fake"}\n'
