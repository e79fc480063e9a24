"""A connector run as a plain process against the development-mode server: drives
the Container API at $CONTAINER_API_URL through the client generated from
openapi/container-api.json and prints what it saw as one JSON object. Files for
storage go to $CDE_WORK_DIR. (The generated package `cde_client` is on sys.path.)"""

import json
import os

from cde_client import Client
from cde_client.api.classifications import csa_classifications
from cde_client.api.input_ import count_items, next_batch, next_item, restart_input
from cde_client.api.logs import write_log
from cde_client.api.misc import ping
from cde_client.api.output import close_output, write_output
from cde_client.api.storage import get_process, store_internal
from cde_client.models import (
    CloseOutputType,
    CopyRequest,
    CountItemsType,
    LogRequest,
    Meta,
    NextBatchType,
    NextItemType,
    Record,
    RestartInputType,
    WriteLogLevel,
    WriteOutputType,
    WriteRequest,
)
from cde_client.models.log_context_type_0 import LogContextType0

base_url = os.environ.get("CONTAINER_API_URL", "http://cde-container-api")
client = Client(base_url=base_url, raise_on_unexpected_status=True, timeout=5.0)
seen = {}

seen["ping"] = ping.sync(client=client).message

# Writing.
records = [
    Record.from_dict({"id": "1", "taxon": [{"id": 11, "name": "t"}]}),
    Record.from_dict({"id": "2", "price": 9.5}),
]
written = write_output.sync_detailed(
    WriteOutputType.OUTPUT,
    client=client,
    body=WriteRequest(data=records, meta=Meta(separator="_")),
)
seen["write"] = [written.status_code, written.parsed.message]
rejected = write_output.sync_detailed(WriteOutputType.OUTPUT, client=client, body=WriteRequest(data=[]))
seen["write_empty"] = [rejected.status_code, rejected.parsed.errors.additional_properties]
feedback = write_output.sync(
    WriteOutputType.FEEDBACK, client=client, body=WriteRequest(data=[Record.from_dict({"id": "1", "ok": True})])
)
seen["feedback"] = feedback.message
seen["close"] = close_output.sync_detailed(CloseOutputType.FEEDBACK, client=client).status_code
after_close = write_output.sync_detailed(
    WriteOutputType.FEEDBACK, client=client, body=WriteRequest(data=[Record.from_dict({"id": "late"})])
)
seen["after_close"] = [after_close.status_code, after_close.parsed.errors.additional_properties]

# Reading.
seen["count"] = count_items.sync(CountItemsType.INPUT, client=client).data.count
seen["next"] = next_item.sync(NextItemType.INPUT, client=client).data.to_dict()
batch = next_batch.sync(NextBatchType.INPUT, client=client, size=2, show_hidden=True)
seen["batch"] = [r.to_dict() for r in batch.data]
seen["exhausted_batch"] = [r.to_dict() for r in next_batch.sync(NextBatchType.INPUT, client=client, size=1000).data]
seen["exhausted_next"] = next_item.sync_detailed(NextItemType.INPUT, client=client).status_code
seen["restart"] = restart_input.sync(RestartInputType.INPUT, client=client).message
seen["after_restart"] = next_item.sync(NextItemType.FULL, client=client).data.to_dict()
missing = next_item.sync(NextItemType.NEW, client=client)
seen["missing_stream"] = missing.message
bad_size = next_batch.sync(NextBatchType.INPUT, client=client, size=0)
seen["bad_size"] = bad_size.errors.additional_properties

# Logging.
seen["log"] = write_log.sync(
    WriteLogLevel.NOTICE,
    client=client,
    body=LogRequest(message="from python", context=LogContextType0.from_dict({"records": 2})),
).message
seen["log_php_context"] = write_log.sync(
    WriteLogLevel.REPORT, client=client, body=LogRequest(message="empty context", context=[])
).message
blank = write_log.sync(WriteLogLevel.ERROR, client=client, body=LogRequest(message=" "))
seen["log_blank"] = blank.errors.additional_properties

# Storage and classifications.
export = os.path.join(os.environ["CDE_WORK_DIR"], "export.csv")
with open(export, "w") as f:
    f.write("id;title\n1;shoe\n")
started = store_internal.sync(client=client, body=CopyRequest(source_file=export, remote_file="kept/export.csv"))
process = get_process.sync(str(started.data.id), client=client).data
seen["process"] = [str(process.id) == str(started.data.id), process.status.value]
seen["classifications"] = [c.to_dict() for c in csa_classifications.sync(client=client)]

print(json.dumps(seen))
