"""Run a measuring command and keep its JSON report with where it came from.

    python scripts/record_result.py docs/results/eval_reach.json -- ami-ros eval --task reach --json

The command must print its report as JSON on stdout (`ami-ros eval --json`, `ami-ros bench --json`)
or write it to the file named by `{out}` in its arguments (the early-warning benchmark's `--out`).
The file written holds `command`, `date` (UTC, ISO 8601), `commit` (the checkout's HEAD, with
`-dirty` when files other than the documentation and tests have uncommitted changes), `wall_s` and the
command's `report`. The results page and the README's headline table are generated from these
files (`python -m ami_ros.docs`).
"""

from __future__ import annotations

import datetime
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commit() -> str:
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=True)
    # Only changes that can alter a measurement count: not the documentation, its generator or tests.
    docs_only = [":!docs", ":!*.md", ":!*.rst", ":!ami_ros/docs.py", ":!test"]
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *docs_only],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def last_json(text: str) -> dict:
    """The JSON object a command printed last: from a line that starts with "{" to the end of the
    output, else that line alone. What comes before it is skipped (onnxruntime prints a provider
    that fails to start, "EP Error …", to stdout)."""
    lines = text.strip().splitlines()
    for start in reversed([i for i, line in enumerate(lines) if line.startswith("{")]):
        for candidate in ("\n".join(lines[start:]), lines[start]):
            try:
                found = json.loads(candidate)
            except json.JSONDecodeError:
                continue
            if isinstance(found, dict):
                return found
    raise SystemExit("record_result: the command printed no JSON object")


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        raise SystemExit(__doc__)
    out, command = Path(argv[0]), argv[2:]
    source = commit()  # before the run: the code that ran, whatever changes meanwhile
    with tempfile.TemporaryDirectory() as tmp:
        report_file = Path(tmp) / "report.json"
        args = [a.replace("{out}", str(report_file)) for a in command]
        started = time.monotonic()
        date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        done = subprocess.run(args, stdout=subprocess.PIPE, text=True, cwd=ROOT, check=True)
        wall = time.monotonic() - started
        report = json.loads(report_file.read_text()) if report_file.exists() else last_json(done.stdout)
    report = json.loads(json.dumps(report).replace(str(ROOT) + "/", ""))  # no machine paths
    record = {"command": shlex.join(command).replace("{out}", "<report>"), "date": date, "commit": source}
    record |= {"wall_s": round(wall, 1), "report": report}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
