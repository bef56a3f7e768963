"""The request stream of ImportOpportunities: the header, then each file as its start message and its
bytes in 1 MiB chunks. Shared by the CLI, the tests and the benchmark, which all upload histories."""
from pathlib import Path

from leadflow.opportunity.v1 import opportunity_pb2

CHUNK = 1024 * 1024
TABLES = {"opportunities": opportunity_pb2.IMPORT_TABLE_OPPORTUNITIES,
          "accounts": opportunity_pb2.IMPORT_TABLE_ACCOUNTS,
          "sales_teams": opportunity_pb2.IMPORT_TABLE_SALES_TEAMS,
          "products": opportunity_pb2.IMPORT_TABLE_PRODUCTS}


def history_requests(header: opportunity_pb2.OpportunityImportHeader, files: dict, mappings: dict | None = None):
    """``files``: {table name: a path or bytes}; ``mappings``: {table name: {column: field}}."""
    yield opportunity_pb2.ImportOpportunitiesRequest(header=header)
    for table, content in files.items():
        name = Path(content).name if isinstance(content, (str, Path)) else f"{table}.csv"
        yield opportunity_pb2.ImportOpportunitiesRequest(file=opportunity_pb2.ImportFileStart(
            table=TABLES[table], filename=name, mapping=(mappings or {}).get(table, {})))
        if isinstance(content, (str, Path)):
            with open(content, "rb") as file:
                while chunk := file.read(CHUNK):
                    yield opportunity_pb2.ImportOpportunitiesRequest(chunk=chunk)
        else:
            for start in range(0, len(content), CHUNK):
                yield opportunity_pb2.ImportOpportunitiesRequest(chunk=content[start:start + CHUNK])
