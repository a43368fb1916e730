#!/usr/bin/env bash
# Three consecutive runs of the README's main job, then three more while another process
# keeps one core busy; then the side-by-side table (consistency.py).  From the repository root:
#   bash benchmarks/results/bench-consistency-cpu-2026-11-23/run.sh
set -u
here=benchmarks/results/bench-consistency-cpu-2026-11-23
for i in 1 2 3; do
    /usr/bin/time -f "%e s wall" -o "$here/idle-$i.time" \
        fastgan bench --quick --no-progress --json "$here/idle-$i.json" --plot "$here/idle-$i.png" > "$here/idle-$i.txt"
done
python -c "while True: pass" &
busy=$!
trap 'kill $busy 2>/dev/null' EXIT
for i in 1 2 3; do
    /usr/bin/time -f "%e s wall" -o "$here/busy-$i.time" \
        fastgan bench --quick --no-progress --json "$here/busy-$i.json" > "$here/busy-$i.txt"
done
kill $busy
trap - EXIT
python "$here/consistency.py" "$here" > "$here/README.md"
