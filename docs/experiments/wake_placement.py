"""Where the kernel runs woken `bench` threads, from a `perf sched record` trace on 2 CPUs.
ARCHITECTURE.md, "What a sleeping hand-over costs here" (session 15).

For every `sched_waking` of a thread whose name starts with `bench` and that is not running
at that moment, notes which CPUs were idle, and at the thread's next `sched_switch` in, on
which CPU it ran and how long it waited. A CPU counts as idle only once the trace has shown
what it runs (its first `sched_switch`), so wake-ups before that are classed as if none
were idle. Prints, per class (no CPU idle at the wake-up; a CPU idle and the thread ran
on an idle one; a CPU idle but it ran on a busy one), the count, median and p90 wait, the
total wait and the waits over 1 ms.

    perf sched record -o sched.data target/release/bench --threads 4
    python3 docs/experiments/wake_placement.py sched.data
"""

import collections
import re
import subprocess
import sys

SWITCH = re.compile(r"next_pid=(\d+)")
WAKING = re.compile(r"sched_waking: comm=(.*) pid=(\d+) prio=")
EVENT = re.compile(r"\s*(.*?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):")


def main(trace):
    out = subprocess.run(
        ["perf", "script", "-i", trace, "-F", "comm,tid,cpu,time,event,trace"],
        capture_output=True, text=True, check=True,
    ).stdout
    running = {}  # pid on each CPU seen so far, 0 when idle
    woken = {}  # pid -> (time of the wake-up, CPUs idle then)
    waits = collections.defaultdict(list)
    for line in out.splitlines():
        m = EVENT.match(line)
        if not m:
            continue
        cpu, t, event = int(m.group(3)), float(m.group(4)), m.group(5)
        if event == "sched:sched_switch":
            pid = int(SWITCH.search(line).group(1))
            running[cpu] = pid
            if pid in woken:
                t0, idle = woken.pop(pid)
                if not idle:
                    kind = "no CPU idle at the wake-up"
                elif cpu in idle:
                    kind = "a CPU idle; ran on an idle one"
                else:
                    kind = "a CPU idle; ran on a busy one"
                waits[kind].append((t - t0) * 1e6)
        elif event == "sched:sched_waking":
            w = WAKING.search(line)
            pid = int(w.group(2)) if w else 0
            if w and w.group(1).startswith("bench") and pid not in running.values():
                woken[pid] = (t, [c for c in running if running[c] == 0])
    for kind, w in sorted(waits.items()):
        w.sort()
        print(f"{kind:32s} {len(w):4d} wake-ups, wait: median {w[len(w) // 2]:.0f} us, "
              f"p90 {w[int(len(w) * 0.9)]:.0f} us, total {sum(w) / 1000:.1f} ms, "
              f"over 1 ms: {sum(1 for x in w if x > 1000)}")


if __name__ == "__main__":
    main(sys.argv[1])
