"""(ii) Raw store: SecantusDB insert_one/s, and insert_many docs/s for reference."""
import time
import uuid

import pymongo


def bench_store(mongo_uri: str, count: int) -> dict:
    collection = pymongo.MongoClient(mongo_uri)["leadflow_bench"]["leads"]
    collection.drop()
    started = time.perf_counter()
    for i in range(count):
        collection.insert_one({"_id": str(uuid.uuid4()), "email": f"lead{i}@example.com", "source": "web"})
    single = count / (time.perf_counter() - started)
    batch = [{"_id": str(uuid.uuid4()), "email": f"lead{i}@example.com"} for i in range(count * 5)]
    started = time.perf_counter()
    collection.insert_many(batch)
    many = len(batch) / (time.perf_counter() - started)
    collection.drop()
    return {"insert_one_per_s": single, "insert_many_docs_per_s": many}
