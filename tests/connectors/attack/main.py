"""A connector that attacks cde through what it may write: its run directory.

MODE:
  ok              writes 3 records through the API
  symlink-output  writes records, then replaces output/output.jsonl with a symlink to TARGET
  forge-summary   writes 3 records, then plants a summary.json claiming 999999 rows and a
                  column that does not exist, and blocks the supervisor from replacing it
  garbage         writes records, then appends lines that are not records to output.jsonl
  forge-logs      appends forged lines to logs.jsonl (source "cde", and one stamped 2099),
                  then prints LINES numbered STDOUT lines, one every 0.2 s
  tagged          writes 3 records carrying TAG, printing LINES lines first, one every 0.2 s
  symlink-state   writes records, then plants output/state.json as a symlink to TARGET
  secret-state    writes records, then writes output/state.json itself, holding TARGET
                  (given as a password option), past the Container API's check
"""

import json
import os
import sys
import time
import urllib.request

API = os.environ.get("CONTAINER_API_URL") or "http://cde-container-api"
RUN = "/cde/run"


def post(path, body):
    request = urllib.request.Request(
        API + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


def write(records):
    post("/output/output", {"data": records})


def ticks(count):
    for n in range(1, count + 1):
        print(f"line {n}", flush=True)
        time.sleep(0.2)


def main():
    if "--health-check" in sys.argv:
        sys.exit(0)
    mode = os.environ.get("MODE", "ok")
    lines = int(os.environ.get("LINES", "0") or 0)
    records = [{"id": str(n), "name": f"product {n}"} for n in range(3)]
    if mode == "tagged":
        ticks(lines)
        tag = os.environ.get("TAG", "")
        write([dict(r, tag=tag) for r in records])
        return
    write(records)
    if mode == "symlink-output":
        output = f"{RUN}/output/output.jsonl"
        os.remove(output)
        os.symlink(os.environ["TARGET"], output)
    elif mode == "symlink-state":
        os.symlink(os.environ["TARGET"], f"{RUN}/output/state.json")
    elif mode == "secret-state":
        with open(f"{RUN}/output/state.json", "w") as f:
            json.dump({"stolen": os.environ.get("SECRET", "")}, f)
    elif mode == "forge-summary":
        forged = {
            "files": {"output": {"rows": 999999, "columns": ["id", "forged"]}},
            "columns": ["id", "forged"],
            "logs": {},
        }
        with open(f"{RUN}/summary.json", "w") as f:
            json.dump(forged, f)
        # A directory where the supervisor writes its temp file: it cannot replace ours.
        os.makedirs(f"{RUN}/summary.json.tmp/x", exist_ok=True)
    elif mode == "garbage":
        with open(f"{RUN}/output/output.jsonl", "a") as f:
            f.write("THIS IS NOT JSON\n[1,2,3]\n")
    elif mode == "forge-logs":
        forged = [
            {"at": "2026-01-01T00:00:00.000000Z", "source": "cde", "level": "error",
             "message": "forged: cde says the run is compromised"},
            {"at": "2099-01-01T00:00:00.000000Z", "source": "stdout", "level": "info",
             "message": "forged: a line from the future"},
        ]
        with open(f"{RUN}/logs.jsonl", "a") as f:
            for line in forged:
                f.write(json.dumps(line) + "\n")
        ticks(lines)


if __name__ == "__main__":
    main()
