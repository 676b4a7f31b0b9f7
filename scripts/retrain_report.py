"""The retrain's report (`scripts/retrain.sh`): seconds per stage, what the data holds, and each
training stage's held-out metrics, in the format of docs/results/*.json (command, date, commit,
wall_s, report).

    python scripts/retrain_report.py OUT_FOLDER [RESULT_FILE] [NOTE]

NOTE: what else ran on the machine meanwhile, kept with the figures (`RETRAIN_NOTE` in retrain.sh).
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path


def stage_metrics(out: Path, stage: str) -> dict:
    m = json.loads((out / stage / "metrics.json").read_text())
    keep = {k: m[k] for k in ("kstep_ratio", "block_forecast", "probes") if k in m}
    return keep | ({"pose": m["pose_training"]} if "pose_training" in m else {})


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    stages: dict[str, float] = {}
    for line in (out / "stage_times.tsv").read_text().splitlines():
        name, ms = line.split("\t")
        stages[name] = stages.get(name, 0.0) + float(ms) / 1000
    collect = json.loads((out / "data" / "collect_summary.json").read_text())
    keys = ("episodes", "transitions", "jobs", "block_moved_fraction", "block_moved_fraction_by_policy")
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    record = {
        "command": "scripts/retrain.sh",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": head.stdout.strip(),
        "wall_s": round(sum(stages.values()), 1),
        **({"note": argv[2]} if len(argv) > 2 and argv[2] else {}),
        "report": {
            "stages_s": {k: round(v, 1) for k, v in stages.items()},
            "total_s": round(sum(stages.values()), 1),
            "collect": {k: collect[k] for k in keys} | {"demonstrations": collect.get("demonstrations")},
            "end_to_end": stage_metrics(out, "train"),
            "pose": stage_metrics(out, "pose").get("pose", {}),
            "predictor": stage_metrics(out, "predictor"),
            **(
                {"scene_slot": json.loads((out / "slot" / "metrics.json").read_text())["metrics"]}
                if (out / "slot" / "metrics.json").exists()
                else {}
            ),
        },
    }
    text = json.dumps(record, indent=2) + "\n"
    (out / "retrain.json").write_text(text)
    if len(argv) > 1 and argv[1]:
        Path(argv[1]).write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
