"""All four connector types in a few lines of stdlib Python, for the pipeline tests.

main.py source        writes the rows of the ROWS option (a JSON array); logs LOG if set
main.py service       MODE=tag: writes every row back with ___feed_seen=1;
                      MODE=nothing: writes nothing; MODE=fail: exits 1;
                      MODE=flaky: exits 75 (transient) on its first attempt, then tags
main.py export        writes feedback {"id", "status": "error"} for rows without a price
main.py export-delta  reads new/modified/unchanged/deleted and logs the counts; FAIL=1 exits 1;
                      FLAKY=1 exits 75 (transient) on its first attempt

The attempt is CDE_ATTEMPT, which cde sets: 1 for a run's first attempt, 2 for its retry.
"""

import json
import os
import sys
import urllib.error
import urllib.request

API = os.environ.get("CONTAINER_API_URL") or "http://cde-container-api"


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(API + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read()
        return json.loads(text) if text else None


def log(message):
    call("POST", "/logs/info", {"message": message})


def write(kind, rows):
    for start in range(0, len(rows), 1000):
        call("POST", f"/output/{kind}", {"data": rows[start:start + 1000]})


def read(stream):
    rows = []
    while True:
        batch = call("GET", f"/input/{stream}/next_batch?size=1000&show-hidden=true")["data"]
        if not batch:
            return rows
        rows.extend(batch)


def first_attempt():
    return os.environ.get("CDE_ATTEMPT", "1") == "1"


def main():
    mode = sys.argv[1]
    if "--health-check" in sys.argv:
        return 0
    if mode == "source":
        rows = json.loads(os.environ.get("ROWS", "[]"))
        if os.environ.get("LOG"):
            log(os.environ["LOG"])
        write("output", rows)
        log(f"source wrote {len(rows)} rows")
    elif mode == "service":
        rows = read("input")
        behaviour = os.environ.get("MODE", "tag")
        log(f"service read {len(rows)} rows, mode {behaviour}")
        if behaviour == "fail":
            return 1
        if behaviour == "flaky":
            if first_attempt():
                return 75
            behaviour = "tag"
        if behaviour == "tag":
            write("output", [dict(row, ___feed_seen="1") for row in rows])
    elif mode == "export":
        rows = read("input")
        failing = [row for row in rows if not row.get("price")]
        write("feedback", [{"id": row["id"], "status": "error", "message": "no price"} for row in failing])
        log(f"export sent {len(rows) - len(failing)} rows, {len(failing)} failed")
    elif mode == "export-delta":
        counts = {stream: len(read(stream)) for stream in ("new", "modified", "unchanged", "deleted")}
        log("export-delta " + " ".join(f"{k}={v}" for k, v in counts.items()))
        if os.environ.get("FAIL") == "1":
            return 1
        if os.environ.get("FLAKY") == "1" and first_attempt():
            return 75
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except urllib.error.HTTPError as e:
        print(f"{e.code} {e.read().decode()}", file=sys.stderr)
        sys.exit(2)
