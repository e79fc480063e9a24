"""Sample Productsup-style data source for the CDE Container API.

Run as `python3 main.py data-source`; with `--health-check` appended it exits 0 at once.
Options arrive as environment variables: NAME (default "world") and SHOULD_FAIL ("1"
makes the run fail on purpose). Exit codes: 0 success, 1 failed on purpose, 2 the
Container API answered with an error or could not be reached, 64 bad usage.
"""

import os
import sys

import httpx

API_URL = os.environ.get("CONTAINER_API_URL") or "http://cde-container-api"
TIMEOUT_SECONDS = 5.0


class ContainerApi:
    """The few Container API calls this connector needs."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=TIMEOUT_SECONDS)

    def _post(self, path: str, body: dict) -> None:
        response = self.http.post(path, json=body)
        if response.is_error:
            raise httpx.HTTPStatusError(
                f"POST {path} answered {response.status_code}: {response.text.strip()}",
                request=response.request,
                response=response,
            )

    def log(self, level: str, message: str, **context) -> None:
        body = {"message": message}
        if context:
            body["context"] = context
        self._post(f"/logs/{level}", body)

    def write(self, records: list) -> None:
        self._post("/output/output", {"data": records})


def records_for(name: str) -> list:
    return [
        {
            "id": f"sample-{n}",
            "title": f"Sample product {n} for {name}",
            "price": price,
            "brand": {"name": "Sample Brand", "country": "DE"},
        }
        for n, price in ((1, "9.99"), (2, "19.50"), (3, "4.25"))
    ]


def data_source(api: ContainerApi, name: str, should_fail: bool) -> int:
    api.log("info", f"starting sample source for {name}")
    api.log("debug", "container api reached", api_url=API_URL)

    records = records_for(name)
    api.write(records[:2])  # two requests, to show that writes append
    api.write(records[2:])
    api.log("notice", f"wrote {len(records)} records", count=len(records))

    print(f"sample source wrote {len(records)} records for {name}", flush=True)
    print("sample warning on stderr", file=sys.stderr, flush=True)

    if should_fail:
        api.log("error", "failing on purpose (SHOULD_FAIL=1)")
        return 1
    api.log("success", f"sample source finished for {name}")
    return 0


def main(argv: list) -> int:
    if "--health-check" in argv:
        return 0
    if argv != ["data-source"]:
        print("usage: main.py data-source [--health-check]", file=sys.stderr)
        return 64

    name = os.environ.get("NAME") or "world"
    should_fail = os.environ.get("SHOULD_FAIL", "0") == "1"
    try:
        return data_source(ContainerApi(API_URL), name, should_fail)
    except httpx.HTTPError as error:
        print(f"container API error ({API_URL}): {error}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
