"""(xvi) Time to last assignment: a lead file imported through ImportLeadFile on the platform of the
whole pipeline, from the import's start until routing has assigned the last of its leads, for a
10,000-row and a 100,000-row CSV (BENCH_IMPORT_ROWS chooses the sizes). Every row is a lead the
default scoring model qualifies, so every row must reach a rep: what a trade fair's or a webinar's
list asks of the platform the morning after."""
import csv
import io
import os
import time
import uuid

from bench.capture import import_file

DEFAULT_SIZES = (10_000, 100_000)


def sizes() -> list[int]:
    """The file sizes, as the issue of speed asks them (not scaled by BENCH_SCALE: a 10,000-row file is
    the case to answer for); BENCH_IMPORT_ROWS=10000 or =2000,10000 picks others."""
    text = os.environ.get("BENCH_IMPORT_ROWS", "")
    return [int(part) for part in text.replace(" ", "").split(",") if part] if text else list(DEFAULT_SIZES)


def routable_lead_file(rows: int, batch: str) -> bytes:
    """Decision makers at large software companies: each one an MQL under the default model."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["First Name", "Last Name", "Email", "Company", "Job Title", "Company Size", "Industry"])
    for i in range(rows):
        writer.writerow([f"Visitor{i}", "Fair", f"v{i}.{batch}@buyer{i % 7919}.com", f"Buyer {i % 7919} GmbH",
                         ("CTO", "VP Engineering", "Head of IT", "CIO")[i % 4], 800 + i % 400, "software"])
    return buffer.getvalue().encode()


def bench_time_to_last_assignment(client, watcher, rows: int) -> dict:
    batch = uuid.uuid4().hex[:8]
    source = f"fair-{batch}"
    content = routable_lead_file(rows, batch)
    seen_before = len(watcher.tap.received)
    started = time.perf_counter()
    report, import_seconds = import_file(client, content, source)
    assigned, last_at = watcher.wait_for_source(source, report.accepted, start_index=seen_before,
                                                timeout=max(600.0, rows / 5))
    elapsed = (last_at or time.perf_counter()) - started
    return {"rows": rows, "accepted": report.accepted, "rejected": report.rejected, "assigned": assigned,
            "import_seconds": import_seconds, "import_rows_per_s": rows / import_seconds,
            "seconds_to_last_assignment": elapsed, "leads_per_s_end_to_end": assigned / elapsed}
