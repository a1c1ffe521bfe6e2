"""CPU latency of two checkouts side by side in one run, taking turns (docs/performance.md, issue 13).

Usage: python scripts/latency/side_by_side.py BEFORE_SRC AFTER_SRC ROUNDS RUNS
  e.g. git worktree add --detach /tmp/old <commit>;
       python scripts/latency/side_by_side.py /tmp/old/src src 10 3
Each checkout runs in its own process (worker.py: interhand bench's plain networks, the pytorch
and onnxruntime backends on the demo weights); the driver asks them in turn for RUNS timed
forwards of each configuration, ROUNDS times, alternating which goes first, and prints the
medians as a Markdown table.
"""
import json, os, statistics, subprocess, sys, tempfile
PY = sys.executable
HERE = os.path.dirname(os.path.abspath(__file__))
roots = {"before": os.path.abspath(sys.argv[1]), "after": os.path.abspath(sys.argv[2])}
tmp = tempfile.mkdtemp(prefix="latency_")
procs = {}
for tag, root in roots.items():
    env = dict(os.environ, PYTHONPATH=root)
    procs[tag] = subprocess.Popen([PY, os.path.join(HERE, "worker.py"), tag, tmp], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, env=env)
def read(p):
    while True:
        line = p.stdout.readline()
        if not line:
            raise RuntimeError("worker died")
        if line.startswith("@@"):
            return json.loads(line[2:])
info = {tag: read(p) for tag, p in procs.items()}
print(info, file=sys.stderr)
variants = info["after"]["variants"]
rounds, per = int(sys.argv[3]), int(sys.argv[4])
times = {(v, t): [] for v in variants for t in roots}
for r in range(rounds):
    order = list(roots) if r % 2 == 0 else list(reversed(roots))
    for v in variants:
        for tag in order:
            procs[tag].stdin.write(json.dumps({"variant": v, "n": per}) + "\n"); procs[tag].stdin.flush()
            times[(v, tag)] += read(procs[tag])
    print(f"round {r + 1}/{rounds}", file=sys.stderr, flush=True)
for p in procs.values():
    p.stdin.close(); p.wait()
cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")]
print(f"CPU: {cpu[0]} ({os.cpu_count()} logical cores), torch threads {info['after']['threads']}, "
      f"{rounds} rounds x {per} runs per variant and version, alternating")
print("| configuration | before (ms) | after (ms) | after / before |")
print("|---|---|---|---|")
for v in variants:
    b = statistics.median(times[(v, "before")]) * 1e3
    a = statistics.median(times[(v, "after")]) * 1e3
    print(f"| {v} | {b:.1f} | {a:.1f} | {a / b:.2f} |")
