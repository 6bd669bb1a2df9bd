"""A fluid simulation of W1's writers on 2 cores: one file (a lock around each commit's write)
against a file per thread (no lock). ARCHITECTURE.md, "An engine-free model of one file".

Each writer alternates work of P microseconds (any core) and a write of S microseconds (a core,
and in one file the lock, handed in arrival order the moment it is free). Runnable writers
share the cores equally (`fair`, as the kernel's fair class does), or the lock's holder gets a
whole core first (`holder-first`). Durations vary uniformly by +-jitter. Prints commits per
second and cores busy for T = 2, 4, 8.

    python3 docs/experiments/one_file_sim.py P S [fair|holder-first]
"""

import random
import sys


def simulate(threads, work, write, jitter, commits, one_file, fair, seed=1):
    rnd = random.Random(seed)

    def draw(mean):
        return mean * (1 + rnd.uniform(-jitter, jitter))

    state = ["work"] * threads
    left = [draw(work) * rnd.uniform(0.9, 1.1) for _ in range(threads)]
    queue, holder = [], None
    now = busy = 0.0
    done = 0
    while done < commits * threads:
        working = [i for i in range(threads) if state[i] == "work"]
        writing = [i for i in range(threads) if state[i] == "write"]
        if not one_file:
            running = working + writing
            share = min(1.0, 2 / len(running)) if running else 0.0
            rates = {i: share for i in running}
        elif fair:
            running = working + ([holder] if holder is not None else [])
            share = min(1.0, 2 / len(running)) if running else 0.0
            rates = {i: share for i in running}
        else:
            free_cores = 2 - (holder is not None)
            share = min(1.0, free_cores / len(working)) if working else 0.0
            rates = {i: share for i in working}
            if holder is not None:
                rates[holder] = 1.0
        step = min(left[i] / r for i, r in rates.items() if r > 0)
        now += step
        busy += step * sum(rates.values())
        for i, r in rates.items():
            left[i] -= r * step
        for i in list(rates):
            if left[i] > 1e-9:
                continue
            if state[i] == "work":
                if not one_file or holder is None:
                    state[i], left[i] = "write", draw(write)
                    if one_file:
                        holder = i
                else:
                    state[i] = "wait"
                    queue.append(i)
            else:
                done += 1
                state[i], left[i] = "work", draw(work)
                if one_file:
                    holder = None
                    if queue:
                        holder = queue.pop(0)
                        state[holder], left[holder] = "write", draw(write)
    return commits * threads / now * 1e6, busy / now


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    work, write = float(sys.argv[1]), float(sys.argv[2])
    fair = (sys.argv[3] if len(sys.argv) > 3 else "fair") == "fair"
    for threads in (2, 4, 8):
        for jitter in (0.0, 0.2, 0.5):
            one = simulate(threads, work, write, jitter, 100, True, fair)
            files = simulate(threads, work, write, jitter, 100, False, fair)
            print(
                f"T={threads} jitter={jitter}: one file {one[0]:.0f}/s ({one[1]:.2f} cores), "
                f"files {files[0]:.0f}/s ({files[1]:.2f} cores), ratio {one[0] / files[0]:.3f}"
            )


if __name__ == "__main__":
    main()
