"""(vi) Resident memory of each process of the platform of the whole pipeline."""
from bench.common import rss_mib


def bench_memory(stack) -> dict:
    return {p.label: round(rss_mib(p.process.pid), 1) for p in stack.processes}
