"""azeval at 1,000 to 100,000 cases: validate, plan, run, memory, run folder, report.

    python bench/bench_scale.py [--sizes 1000,10000,100000] [--concurrency 64] [--browser]
                                [--resume] [--resume-only] [--keyword EXPR]

Each size is one ``for_each`` suite over a JSONL file of that many rows (three checks per
case), run against an in-process fake Azure server answering with zero latency. Every
command runs as ``azeval`` would, in a child process of its own, so its peak resident memory
is its own. Prints a table with each figure's ratio to the first (smallest) size: validate,
plan and run wall time, per-case run time, peak RSS of the run, journal and report size,
and (with ``--browser``) the report's time to interactive in headless Chromium. With
``--resume``, a second run is killed (SIGKILL) once half its cases are in its journal, and
``azeval run --resume`` of it is timed from its start to the first request the fake answers;
``--resume-only`` measures that alone. ``--keyword EXPR`` runs (and resumes) only the cases
``-k EXPR`` selects (``-k "ticket-1 or ticket-2"``: about 22% of them): a resumed selection
names each of its cases.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.testing import FakeAzure

KEY = "bench-key-0123456789"
CONFIG = """
[targets.gpt35]
kind = "azure"
endpoint = "{endpoint}"
deployment = "gpt35"
model = "gpt-35-turbo"
model_version = "0125"
"""
SUITE = """\
suite: scale
defaults:
  system: Answer as JSON with a key 'reply'.
  params: {max_tokens: 60, temperature: 0, response_format: {type: json_object}}
cases:
  - id: "ticket-{{ row.id }}"
    for_each: {row: data/tickets.jsonl}
    prompt: "Please repeat case number {{ row.id }} back to me: {{ row.text }}"
    expect:
      icontains: "case number {{ row.id }}"
      json_schema: {type: object, required: [reply]}
      finish_reason: stop
"""
CHROMIUM = Path("/usr/bin/chromium")


def write_project(root: Path, cases: int, endpoint: str) -> None:
    """azeval.toml, the suite and its JSONL of ``cases`` rows."""
    (root / "azeval.toml").write_text(CONFIG.format(endpoint=endpoint))
    (root / "suites" / "data").mkdir(parents=True)
    (root / "suites" / "scale.yaml").write_text(SUITE)
    with (root / "suites" / "data" / "tickets.jsonl").open("w") as rows:
        for n in range(cases):
            text = f"My order {n} arrived damaged; the box was open and the invoice missing."
            rows.write(json.dumps({"id": n, "text": text}) + "\n")


def child(argv: list[str]) -> None:
    """Run ``azeval argv`` in this process; print its peak RSS (KiB) as the last line."""
    from harness.cli import main as azeval

    sys.argv = ["azeval", *argv]
    code = 0
    try:
        azeval()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    sys.stdout.flush()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"\nPEAK_RSS_KIB {peak}", file=sys.stderr)
    sys.exit(code)


@dataclass(frozen=True)
class Timed:
    seconds: float
    peak_mib: float


def azeval(root: Path, *args: str, expect: int = 0) -> Timed:
    """``azeval args`` in a child process in ``root``; its wall time and peak memory."""
    started = time.perf_counter()
    done = subprocess.run(
        child_command(*args),
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "AZURE_OPENAI_API_KEY": KEY, "NO_COLOR": "1"},
    )
    elapsed = time.perf_counter() - started
    if done.returncode != expect:
        raise SystemExit(f"azeval {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    peak = int(done.stderr.rsplit("PEAK_RSS_KIB ", 1)[1].split()[0])
    return Timed(elapsed, peak / 1024)


def child_command(*args: str) -> list[str]:
    return [sys.executable, __file__, "--child", "--", *args]


def resume_s(
    root: Path, cases: int, concurrency: int, answered: Callable[[], int], keyword: str = ""
) -> float:
    """Kill a run (of the ``cases`` that -k ``keyword`` selects) once half its cases are
    journalled; the seconds from ``--resume`` of it to the first request the fake answers
    (``answered`` counts them). The resume finishes."""
    env = {**os.environ, "AZURE_OPENAI_API_KEY": KEY, "NO_COLOR": "1"}
    runs = root / "reports" / "runs"
    before = {p.name for p in runs.iterdir()} if runs.exists() else set()
    args = ("run", "suites", "-t", "gpt35", "-j", str(concurrency), *selecting(keyword))
    first = subprocess.Popen(child_command(*args), cwd=root, env=env, stderr=subprocess.DEVNULL)
    try:
        while True:
            time.sleep(0.05)
            new = [p for p in runs.iterdir() if p.name not in before] if runs.exists() else []
            journal = new[0] / "results.jsonl" if new else None
            if journal and journal.exists() and _lines(journal) >= cases // 2:
                folder = new[0]
                break
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    sent = answered()
    started = time.perf_counter()
    resumed = subprocess.Popen(
        child_command("run", "--resume", str(folder)), cwd=root, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    while answered() == sent and resumed.poll() is None:
        time.sleep(0.005)
    seconds = time.perf_counter() - started
    if resumed.wait() != 0:
        raise SystemExit(f"azeval run --resume {folder} exited {resumed.returncode}")
    return seconds


def selecting(keyword: str) -> tuple[str, ...]:
    return ("-k", keyword) if keyword else ()


def selected(root: Path, keyword: str) -> int:
    """How many of the project's cases -k ``keyword`` selects."""
    from harness.suite.select import Selection, load_selected

    return sum(len(suite.cases) for suite in load_selected([root / "suites"], Selection(keyword)))


def _lines(journal: Path) -> int:
    with journal.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def interactive_s(report: Path, profile: Path) -> float:
    """Chromium's time to load the report and run its script, less an empty page's."""

    def load(url: str) -> float:
        started = time.perf_counter()
        subprocess.run(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True, check=True, timeout=120,
        )  # fmt: skip
        return time.perf_counter() - started

    empty = profile.parent / "empty.html"
    empty.write_text("<!doctype html><title>empty</title>")
    load(empty.as_uri())  # warm the profile
    return max(0.0, load(report.as_uri()) - load(empty.as_uri()))


def measure(
    cases: int,
    concurrency: int,
    browser: bool,
    server: FakeAzure,
    resume: bool,
    resume_only: bool = False,
    keyword: str = "",
) -> dict[str, float]:
    endpoint = server.endpoint
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_project(root, cases, endpoint)
        chosen = selected(root, keyword) if keyword else cases

        def resumed() -> float:
            return resume_s(root, chosen, concurrency, lambda: server.count(200), keyword)

        if resume_only:  # the killed run is all there is: half the time of a whole run
            return {"resume s": resumed()}
        validate = azeval(root, "validate", "suites")
        plan = azeval(root, "plan", "suites", "-t", "gpt35", *selecting(keyword))
        run = azeval(
            root, "run", "suites", "-t", "gpt35", "-j", str(concurrency), *selecting(keyword)
        )
        (folder,) = [p for p in (root / "reports" / "runs").iterdir() if p.is_dir()]
        row = {
            "validate s": validate.seconds,
            "plan s": plan.seconds,
            "run s": run.seconds,
            "ms/case": 1000 * run.seconds / chosen,
            "run RSS MiB": run.peak_mib,
            "journal MB": (folder / "results.jsonl").stat().st_size / 1e6,
            "report MB": (folder / "report.html").stat().st_size / 1e6,
        }
        if browser:
            row["open s"] = interactive_s(folder / "report.html", root / "profile")
        if resume:
            row["resume s"] = resumed()
        return row


def main() -> None:
    if "--child" in sys.argv:
        child(sys.argv[sys.argv.index("--") + 1 :])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--browser", action="store_true", help="time the report in Chromium")
    parser.add_argument("--resume", action="store_true", help="time --resume of a killed run")
    parser.add_argument(
        "--resume-only",
        action="store_true",
        help="time only --resume of a killed run (no validate, plan or whole run)",
    )
    parser.add_argument(
        "--keyword", default="", metavar="EXPR", help="run and resume only -k EXPR's cases"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    from harness.testing import Deployment, FakeAzure

    rows = {}
    with FakeAzure([Deployment("gpt35")], api_keys=(KEY,), record=False) as server:
        for size in sizes:
            rows[size] = measure(
                size,
                args.concurrency,
                args.browser,
                server,
                args.resume,
                args.resume_only,
                args.keyword,
            )
            print(f"{size} cases: " + ", ".join(f"{k} {v:.2f}" for k, v in rows[size].items()))
    first = rows[sizes[0]]
    columns = list(first)
    print(f"\n{'cases':>8} " + " ".join(f"{c:>18}" for c in columns))
    for size, row in rows.items():
        cells = []
        for column in columns:
            ratio = row[column] / first[column] if first[column] else float("nan")
            cells.append(f"{row[column]:9.2f} ({ratio:5.2f}x)")
        print(f"{size:>8} " + " ".join(f"{c:>18}" for c in cells))
    print(f"(ratios to the {sizes[0]}-case line; concurrency {args.concurrency})")


if __name__ == "__main__":
    main()
