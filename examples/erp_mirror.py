"""An ERP-side client of Leadflow's event stream: mirrors won deals into a local file, as an ERP would
turn them into sales orders.

Independent of Leadflow's code: it needs grpcio and grpcio-tools, and compiles the contract
(protos/leadflow/events/v1/events.proto) at start. It keeps the last position it handled next to the
mirror and resumes after it, so stopping it (Ctrl-C, a crash, a lost network) loses nothing; an
event may arrive twice after a restart, so it skips event ids already in the mirror.

    python examples/erp_mirror.py --address 127.0.0.1:50055 --token "$LEADFLOW_TOKEN" --out won-deals.jsonl
"""
import argparse
import importlib
import json
import os
import queue
import sys
import tempfile
from pathlib import Path

import grpc
from grpc_tools import protoc

PROTOS = Path(__file__).resolve().parent.parent / "protos"


def load_contract():
    """events_pb2 and events_pb2_grpc, compiled from the proto into a temporary directory."""
    out = tempfile.mkdtemp(prefix="leadflow-events-")
    include = Path(protoc.__file__).parent / "_proto"
    if protoc.main(["protoc", f"-I{PROTOS}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}",
                    str(PROTOS / "leadflow/events/v1/events.proto")]) != 0:
        sys.exit("could not compile the event stream contract")
    sys.path.insert(0, out)
    return (importlib.import_module("leadflow.events.v1.events_pb2"),
            importlib.import_module("leadflow.events.v1.events_pb2_grpc"))


def mirror(address: str, token: str, out: Path, limit: int = 0, run_seconds: float = 0.0) -> int:
    """Append every won deal after the saved position to ``out``; returns how many were new."""
    events_pb2, events_pb2_grpc = load_contract()
    position_file = out.with_suffix(out.suffix + ".position")
    seen = set()
    if out.exists():
        seen = {json.loads(line)["event_id"] for line in out.read_text().splitlines() if line}
    start = int(position_file.read_text()) if position_file.exists() else None
    first = events_pb2.SubscribeRequest(num_requested=100, event_types=["opportunity_won"])
    if start is None:
        first.replay_preset = events_pb2.REPLAY_PRESET_EARLIEST
    else:
        first.replay_preset, first.replay_position = events_pb2.REPLAY_PRESET_CUSTOM, start
    asks = queue.Queue()
    asks.put(first)

    def requests():
        while (ask := asks.get()) is not None:
            yield ask

    channel = grpc.insecure_channel(address)
    call = events_pb2_grpc.EventStreamServiceStub(channel).Subscribe(
        requests(), metadata=[("authorization", f"Bearer {token}")], timeout=run_seconds or None)
    added = handled = 0
    try:
        with out.open("a") as sink:
            for response in call:
                for event in response.events:
                    handled += 1
                    if event.event_id not in seen:
                        deal = json.loads(event.payload_json)
                        sink.write(json.dumps({"event_id": event.event_id, "position": event.position,
                                               "opportunity_id": deal["opportunity_id"],
                                               "account": deal.get("account_name", ""),
                                               "amount": deal.get("amount"), "currency": deal.get("currency")})
                                   + "\n")
                        seen.add(event.event_id)
                        added += 1
                    if limit and handled >= limit:
                        break
                sink.flush()
                os.fsync(sink.fileno())
                # The position after what is written: a restart resumes there.
                last = event.position if limit and handled >= limit else response.latest_position
                position_file.write_text(str(last))
                if limit and handled >= limit:
                    break
                if response.events and response.pending_num_requested == 0:
                    asks.put(events_pb2.SubscribeRequest(num_requested=100))
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
    finally:
        asks.put(None)
        call.cancel()
        channel.close()
    return added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="127.0.0.1:50055", help="reporting's gRPC address")
    parser.add_argument("--token", default=os.environ.get("LEADFLOW_TOKEN", ""), help="an integration token")
    parser.add_argument("--out", type=Path, default=Path("won-deals.jsonl"))
    parser.add_argument("--limit", type=int, default=0, help="stop after this many events (as if cut off)")
    parser.add_argument("--run-seconds", type=float, default=0.0, help="stop after this long (0: run until Ctrl-C)")
    args = parser.parse_args()
    added = mirror(args.address, args.token, args.out, args.limit, args.run_seconds)
    print(f"{added} won deals added to {args.out}")


if __name__ == "__main__":
    main()
