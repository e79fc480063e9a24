"""A connector that misbehaves on request, for the orchestrator's lifecycle tests.

MODE: ok | sleep | oom | ignore-term | fail | leak-secret. TAG, when given, is written
into every record. STATE=count reads the incremental state, writes a record
{"id": "state", "previous": n} and puts {"n": n + 1} (before failing, in MODE=fail).
In MODE=fail, SUCCEED_FROM_ATTEMPT=n succeeds instead from attempt n on (CDE_ATTEMPT, which
cde sets to 1 for a run's first attempt, 2 for its first retry), and ERROR, when given, is
logged at error level before it fails. The health check argument is
--health-check (passes), --health-check-fail (exit 3) or --health-check-hang (sleeps).
"""

import json
import os
import signal
import sys
import time
import urllib.request

API = os.environ.get("CONTAINER_API_URL") or "http://cde-container-api"


def post(path, body):
    request = urllib.request.Request(
        API + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        API + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read() or b"null")


def log(level, message):
    post(f"/logs/{level}", {"message": message})


def write(first, count):
    records = [{"id": str(n), "n": n} for n in range(first, first + count)]
    tag = os.environ.get("TAG", "")
    if tag:
        for record in records:
            record["tag"] = tag
    if records:
        post("/output/output", {"data": records})


def main():
    mode = os.environ.get("MODE", "ok")
    if "--health-check" in sys.argv:
        sys.exit(0)
    if "--health-check-fail" in sys.argv:
        print("health check failing on purpose", file=sys.stderr)
        sys.exit(3)
    if "--health-check-hang" in sys.argv:
        time.sleep(60)
    seconds = float(os.environ.get("SECONDS", "0") or 0)
    records = int(os.environ.get("RECORDS", "3") or 0)
    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, lambda *_: print("ignoring SIGTERM", flush=True))
    attempt = int(os.environ.get("CDE_ATTEMPT", "1") or 1)
    log("info", f"behave starting in mode {mode}, attempt {attempt}")
    if mode == "leak-secret":
        # Every way a connector might let its password out.
        token = os.environ.get("TOKEN", "")
        log("info", f"the token is {token}")
        post("/logs/info", {"message": "token in a context", "context": {"token": token}})
        log("info", json.dumps({"token": token}))
        print(f"stdout token {token}", flush=True)
        print(json.dumps({"token": token}), flush=True)
        print(f"stderr token {token}", file=sys.stderr, flush=True)
        half = len(token) // 2
        print(f"split token {token[:half]}", flush=True)
        print(f"{token[half:]} was split", flush=True)
        with open(os.path.join(os.environ.get("CDE_WORK_DIR", "/tmp"), "token.txt"), "w") as f:
            f.write(token)
    write(0, records)
    if os.environ.get("STATE") == "count":
        previous = call("GET", "/state")["data"].get("n", 0)
        post("/output/output", {"data": [{"id": "state", "previous": previous}]})
        call("PUT", "/state", {"data": {"n": previous + 1}})
    if mode == "oom":
        hog = []
        while True:
            hog.append(bytearray(16 * 1024 * 1024))
    if mode in ("sleep", "ignore-term"):
        # Sleep in small steps so that output keeps arriving while the orchestrator watches.
        deadline = time.monotonic() + seconds
        step = 0
        while time.monotonic() < deadline:
            time.sleep(0.5)
            step += 1
            print(f"tick {step}", flush=True)
        write(records, records)
    succeed_from = int(os.environ.get("SUCCEED_FROM_ATTEMPT", "0") or 0)
    if mode == "fail" and not (succeed_from and attempt >= succeed_from):
        if os.environ.get("ERROR"):
            log("error", f"{os.environ['ERROR']} (attempt {attempt})")
        sys.exit(int(os.environ.get("EXIT_CODE", "1")))
    log("success", "behave done")


if __name__ == "__main__":
    main()
