"""Sample Productsup-style connector for the CDE Container API: one image, four types.

Usage: python3 main.py TYPE [--health-check]
  TYPE is data-source, data-service, export or export-delta; with --health-check
  appended it exits 0 at once, without calling the API.

Every call goes through `cde_client`, the client that ../build.sh generates from
openapi/container-api.json with openapi-python-client. The API is at $CONTAINER_API_URL
(default http://cde-container-api), every request with a 5 second timeout.

Options arrive as environment variables (see the manifest of each type):
  data-source    NAME (default "world"), SHOULD_FAIL ("1" fails the run on purpose)
  data-service   SOURCE_COLUMN (default "title"), TARGET_COLUMN (default "___sample_title_copy")
  export         none
  export-delta   none

Exit codes: 0 success, 1 failed on purpose, 2 the Container API answered with an error or
could not be reached, 64 bad usage or a bad option value.
"""

import json
import math
import os
import sys

import httpx
from cde_client import Client
from cde_client.api.input_ import count_items, next_batch
from cde_client.api.logs import write_log
from cde_client.api.output import close_output, write_output
from cde_client.errors import UnexpectedStatus
from cde_client.models import (
    CloseOutputType,
    CountItemsType,
    LogRequest,
    NextBatchType,
    WriteLogLevel,
    WriteOutputType,
    WriteRequest,
)

API_URL = os.environ.get("CONTAINER_API_URL") or "http://cde-container-api"
TIMEOUT_SECONDS = 5.0
BATCH_SIZE = 1000  # the most next_batch hands out at once, and our size of a write
COLUMN_PREFIX = "___sample"  # the data service's column_prefix in manifest-data-service.yaml
DELTA_KEY = "id"  # the export delta's delta_key in manifest-export-delta.yaml

EX_FAILED, EX_API, EX_USAGE = 1, 2, 64


class ApiError(Exception):
    """The Container API answered a call with an error status."""


class UsageError(Exception):
    """Bad command line or option value."""


class ContainerApi:
    """The Container API calls of this connector, through the generated client."""

    def __init__(self, base_url: str) -> None:
        self.client = Client(
            base_url=base_url,
            timeout=httpx.Timeout(TIMEOUT_SECONDS),
            raise_on_unexpected_status=True,
        )

    @staticmethod
    def _ok(what: str, response):
        """The parsed body of a successful answer; an ApiError for a 4xx or 5xx."""
        if response.status_code >= 400:
            body = response.content.decode(errors="replace").strip()
            raise ApiError(f"{what} answered {int(response.status_code)}: {body}")
        return response.parsed

    def log(self, level: str, message: str, **context) -> None:
        body = {"message": message}
        if context:
            body["context"] = context
        self._ok(
            f"POST /logs/{level}",
            write_log.sync_detailed(
                WriteLogLevel(level), client=self.client, body=LogRequest.from_dict(body)
            ),
        )

    def write(self, records: list, file: str = "output") -> None:
        """Appends records to `output` or `feedback`, one request per BATCH_SIZE records."""
        for start in range(0, len(records), BATCH_SIZE):
            body = WriteRequest.from_dict({"data": records[start : start + BATCH_SIZE]})
            self._ok(
                f"POST /output/{file}",
                write_output.sync_detailed(WriteOutputType(file), client=self.client, body=body),
            )

    def close(self, file: str) -> None:
        self._ok(
            f"POST /output/{file}/close",
            close_output.sync_detailed(CloseOutputType(file), client=self.client),
        )

    def batches(self, stream: str, show_hidden: bool = False):
        """Yields the records of an input stream as lists of dicts, until it is exhausted."""
        while True:
            batch = self._ok(
                f"GET /input/{stream}/next_batch",
                next_batch.sync_detailed(
                    NextBatchType(stream),
                    client=self.client,
                    size=BATCH_SIZE,
                    show_hidden=show_hidden,
                ),
            )
            if not batch.data:
                return
            yield [record.to_dict() for record in batch.data]

    def count(self, stream: str) -> int:
        answer = self._ok(
            f"GET /items/{stream}/count",
            count_items.sync_detailed(CountItemsType(stream), client=self.client),
        )
        return answer.data.count


# --- data source ---------------------------------------------------------------------


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


def data_source(api: ContainerApi) -> int:
    name = os.environ.get("NAME") or "world"
    should_fail = os.environ.get("SHOULD_FAIL") or "0"
    if should_fail not in ("0", "1"):
        raise UsageError(f"SHOULD_FAIL must be 0 or 1, not {should_fail!r}")

    api.log("info", f"starting sample source for {name}")
    api.log("debug", "container api reached", api_url=API_URL)

    records = records_for(name)
    api.write(records[:2])  # two requests, to show that writes append
    api.write(records[2:])
    api.log("notice", f"wrote {len(records)} records", count=len(records))

    print(f"sample source wrote {len(records)} records for {name}", flush=True)
    print("sample warning on stderr", file=sys.stderr, flush=True)

    if should_fail == "1":
        api.log("error", "failing on purpose (SHOULD_FAIL=1)")
        return EX_FAILED
    api.log("success", f"sample source finished for {name}")
    return 0


# --- data service --------------------------------------------------------------------


def data_service(api: ContainerApi) -> int:
    source = os.environ.get("SOURCE_COLUMN") or "title"
    target = os.environ.get("TARGET_COLUMN") or f"{COLUMN_PREFIX}_title_copy"
    if not target.startswith(COLUMN_PREFIX):
        raise UsageError(
            f"TARGET_COLUMN {target!r} must start with the column prefix {COLUMN_PREFIX!r}"
        )

    api.log("info", f"copying column {source!r} to {target!r}", source=source, target=target)
    read = copied = 0
    # Hidden columns too: the rows written back replace the feed, so a row must keep
    # the columns of earlier data services (they start with ___ and are hidden otherwise).
    for rows in api.batches("input", show_hidden=True):
        for row in rows:
            if source in row:
                row[target] = row[source]
                copied += 1
        # A data service writes back every product it keeps; rows it leaves out are gone.
        api.write(rows)
        read += len(rows)

    api.log(
        "notice",
        f"read {read} products, copied {source!r} to {target!r} in {copied}, "
        f"{read - copied} without {source!r}, wrote back {read}",
        read=read,
        copied=copied,
        written=read,
    )
    api.log("success", f"sample service finished: {read} products")
    return 0


# --- export --------------------------------------------------------------------------


class Feedback:
    """Feedback rows, written in requests of up to BATCH_SIZE rows as they come (so that
    memory stays bounded by one batch) and closed at the end."""

    def __init__(self, api: ContainerApi) -> None:
        self.api, self.pending, self.written = api, [], 0

    def add(self, row: dict) -> None:
        self.pending.append(row)
        if len(self.pending) >= BATCH_SIZE:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.api.write(self.pending, "feedback")
            self.written += len(self.pending)
            self.pending = []

    def close(self) -> None:
        self.flush()
        if self.written:
            self.api.close("feedback")


def price_problem(record: dict):
    """Why the record's price is unusable, or None when it is a positive number."""
    price = record.get("price")
    if price is None:
        return "price is missing"
    if isinstance(price, str) and not price.strip():
        return "price is empty"
    try:
        if isinstance(price, bool):
            raise TypeError
        value = float(price.strip() if isinstance(price, str) else price)
    except (TypeError, ValueError):
        return f"price {json.dumps(price)} is not a number"
    if not math.isfinite(value):
        return f"price {json.dumps(price)} is not a number"
    if value <= 0:
        return f"price {json.dumps(price)} is not positive"
    return None


def export(api: ContainerApi) -> int:
    total = api.count("input")
    api.log("info", f"exporting {total} products", count=total)
    feedback = Feedback(api)
    checked = sent = without_id = 0
    for rows in api.batches("input"):
        for row in rows:
            checked += 1
            problem = price_problem(row)
            if problem is None:
                sent += 1  # a real export would hand the product to its channel here
            elif row.get("id") in (None, ""):
                without_id += 1  # feedback is keyed by the product id: nothing to key it by
            else:
                feedback.add({"id": row["id"], "status": "error", "message": problem})
    feedback.close()

    rejected = checked - sent
    if without_id:
        api.log("warning", f"{without_id} rejected products have no id, so no feedback")
    api.log(
        "notice",
        f"checked {checked} products: {sent} sent, {rejected} rejected "
        f"({feedback.written} feedback rows)",
        checked=checked,
        sent=sent,
        rejected=rejected,
        feedback=feedback.written,
    )
    api.log("success", f"sample export finished: {sent} of {checked} products sent")
    return 0


# --- export delta --------------------------------------------------------------------

# Input stream, and the action reported in its products' feedback.
DELTA_ACTIONS = (("new", "created"), ("modified", "updated"), ("deleted", "deleted"))


def export_delta(api: ContainerApi) -> int:
    unchanged = api.count("unchanged")
    feedback = Feedback(api)
    sent = {}
    for stream, action in DELTA_ACTIONS:
        sent[stream] = 0
        for rows in api.batches(stream):
            for row in rows:
                # A real export delta would create, update or delete the product at its
                # channel here.
                sent[stream] += 1
                feedback.add({"id": row.get(DELTA_KEY), "action": action})
        api.log("info", f"sent {sent[stream]} {stream} products", stream=stream, count=sent[stream])
    feedback.close()

    api.log(
        "notice",
        f"sent {sent['new']} new, {sent['modified']} modified and {sent['deleted']} deleted "
        f"products; {unchanged} unchanged not sent",
        unchanged=unchanged,
        **sent,
    )
    api.log("success", f"sample export delta finished: {sum(sent.values())} changes sent")
    return 0


# --- entry point ---------------------------------------------------------------------

TYPES = {
    "data-source": data_source,
    "data-service": data_service,
    "export": export,
    "export-delta": export_delta,
}
USAGE = f"usage: main.py {{{','.join(TYPES)}}} [--health-check]"


def main(argv: list) -> int:
    if "--health-check" in argv:
        return 0
    if len(argv) != 1 or argv[0] not in TYPES:
        print(USAGE, file=sys.stderr)
        return EX_USAGE

    api = ContainerApi(API_URL)
    try:
        try:
            return TYPES[argv[0]](api)
        except UsageError as error:
            api.log("error", str(error))
            return EX_USAGE
    except (httpx.HTTPError, ApiError, UnexpectedStatus) as error:
        print(f"container API error ({API_URL}): {error}", file=sys.stderr, flush=True)
        return EX_API


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
