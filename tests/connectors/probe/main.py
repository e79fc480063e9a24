"""Probes what a run can reach, for the isolation tests.

MODE:
  listen   listen on 0.0.0.0:PORT, log "listening on IP:PORT" and serve SECRET to whoever
           connects, for SECONDS
  connect  connect to TARGET (host:port) with a short timeout, read, and write one record
           {"mode", "target", "reached", "received", "error"}
  none     write one record with the container's network interfaces and routes (and, when
           TARGET is set, whether it could be reached); the record itself proves that the
           Container API answers
  fill     write 16 MiB chunks into FILL_DIR (default: CDE_WORK_DIR) until killed, or until
           FILL_MAX_MB are written, then sleep
"""

import json
import os
import socket
import sys
import time
import urllib.request

API = os.environ.get("CONTAINER_API_URL") or "http://cde-container-api"
CHUNK = 16 * 1024 * 1024


def post(path, body):
    request = urllib.request.Request(
        API + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


def log(message):
    post("/logs/info", {"message": message})


def record(data):
    post("/output/output", {"data": [data]})


def own_address():
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return None


def try_connect(target):
    host, port = target.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=3) as conn:
            conn.settimeout(3)
            return True, conn.recv(1024).decode(errors="replace"), None
    except OSError as e:
        return False, "", f"{type(e).__name__}: {e}"


def listen():
    port = int(os.environ.get("PORT", "7070"))
    secret = os.environ.get("SECRET", "the-secret").encode()
    deadline = time.monotonic() + float(os.environ.get("SECONDS", "60"))
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen()
    server.settimeout(0.5)
    log(f"listening on {own_address()}:{port}")
    while time.monotonic() < deadline:
        try:
            conn, peer = server.accept()
        except socket.timeout:
            continue
        with conn:
            conn.sendall(secret)
        log(f"served {peer[0]}")


def interfaces():
    with open("/proc/net/dev") as f:
        return [line.split(":")[0].strip() for line in f.readlines()[2:]]


def routes():
    count = 0
    for path in ("/proc/net/route", "/proc/net/ipv6_route"):
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        if path.endswith("ipv6_route"):
            # The loopback's own routes are listed too; count the others.
            count += sum(1 for line in lines if not line.endswith(" lo"))
        else:
            count += len(lines[1:])
    return count


def fill():
    directory = os.environ.get("FILL_DIR") or os.environ.get("CDE_WORK_DIR", "/cde/work")
    most = int(os.environ.get("FILL_MAX_MB", "1024")) * 1024 * 1024
    chunk = b"\x01" * CHUNK
    written = 0
    log(f"filling {directory}")
    with open(os.path.join(directory, "fill.bin"), "wb") as f:
        while written < most:
            f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
            written += CHUNK
            print(f"wrote {written // (1024 * 1024)} MiB", flush=True)
    while True:
        time.sleep(1)


def main():
    if "--health-check" in sys.argv:
        sys.exit(0)
    mode = os.environ.get("MODE", "none")
    target = os.environ.get("TARGET", "")
    if mode == "listen":
        listen()
    elif mode == "connect":
        reached, received, error = try_connect(target)
        log(f"connect to {target}: reached={reached} received={received!r} error={error}")
        record({"mode": mode, "target": target, "reached": reached, "received": received,
                "error": error})
    elif mode == "none":
        data = {"mode": mode, "interfaces": ",".join(interfaces()), "routes": routes(),
                "address": own_address()}
        if target:
            data["target"] = target
            data["reached"], data["received"], data["error"] = try_connect(target)
        log(f"probe: {data}")
        record(data)
    elif mode == "fill":
        fill()
    else:
        sys.exit(f"unknown MODE {mode}")


if __name__ == "__main__":
    main()
