"""A data service that breaks one rule of the contract, chosen by FAULT, for the tests of
the conformance kit (cde test). With FAULT=none it keeps every rule.

drop-rows      writes back only every other row
stray-column   adds a column without its prefix ___misfit
empty-column   adds a column with an empty name
reread         calls next_batch again and again after the input is exhausted
ignore-term    ignores SIGTERM (and sleeps between batches, so it is still running)
loop-on-400    retries a refused write forever
ignore-400     drops a refused write and exits 0
traceback      any value of FAULT it does not know crashes it with a Python traceback
hog            keeps 32 MiB more for every batch it reads
forge-summary  plants summary.json as a link to a host file and blocks the real one
"""

import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request

API = os.environ.get("CONTAINER_API_URL") or "http://cde-container-api"
FAULTS = {"none", "drop-rows", "stray-column", "empty-column", "reread", "ignore-term",
          "loop-on-400", "ignore-400", "hog", "forge-summary"}
# The run directory, as every run's container has it.
RUN_DIR = "/cde/run"


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        API + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read() or b"null")


def log(level, message):
    call("POST", f"/logs/{level}", {"message": message})


def write(rows, fault):
    while True:
        try:
            call("POST", "/output/output", {"data": rows})
            return
        except urllib.error.HTTPError as e:
            if fault == "loop-on-400":
                continue
            if fault == "ignore-400":
                return
            log("error", f"the Container API refused a write: {e.code}")
            sys.exit(1)


def main():
    if "--health-check" in sys.argv:
        sys.exit(0)
    fault = os.environ.get("FAULT", "none")
    if fault not in FAULTS:
        raise ValueError(f"unknown FAULT {fault!r}")
    if fault == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    kept = []
    n = 0
    while True:
        batch = call("GET", "/input/input/next_batch?size=1000&show-hidden=true")["data"]
        if not batch:
            break
        out = []
        for row in batch:
            n += 1
            if fault == "drop-rows" and n % 2 == 0:
                continue
            if fault == "stray-column":
                row["stray"] = "x"
            if fault == "empty-column":
                row[""] = "x"
            row["___misfit_seen"] = "1"
            out.append(row)
        if fault == "hog":
            kept.append(b"x" * (32 << 20))
        if fault == "ignore-term":
            time.sleep(0.5)
        if out:
            write(out, fault)
    if fault == "forge-summary":
        # The Container API cannot replace what is under its temporary name: a folder.
        os.makedirs(os.path.join(RUN_DIR, "summary.json.tmp"), exist_ok=True)
        os.symlink("/etc/passwd", os.path.join(RUN_DIR, "summary.json"))
    if fault == "reread":
        for _ in range(5):
            call("GET", "/input/input/next_batch?size=1000")
    log("success", f"{n} rows")


if __name__ == "__main__":
    main()
