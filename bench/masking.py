"""(xiv) Log masking, no platform: masking personal data in a log value must cost time in proportion to
its length."""
import time


def bench_log_masking(size: int) -> dict:
    """Masking personal data in a log line must cost time in proportion to its length: a value without
    '@', a value of nothing but '@'s, and ordinary text with emails and phones, each ``size`` characters;
    against one pass of a plain regular expression over the same text, measured in the same run."""
    import re

    from services.common.logs import mask_personal_data
    texts = {
        "no_at": "x" * size,
        "all_at": "@" * size,
        "mixed": ("call li.na@haier-robotics.cn or +86 138 0013 8000 about the demo; " * (size // 64 + 1))[:size],
    }
    baseline_pattern = re.compile(r"[^\s]+")
    results = {"characters": size}
    for name, text in texts.items():
        started = time.perf_counter()
        masked = mask_personal_data(text)
        results[f"{name}_seconds"] = time.perf_counter() - started
        results[f"{name}_changed"] = masked != text
        started = time.perf_counter()
        sum(1 for _ in baseline_pattern.finditer(text))
        results[f"{name}_baseline_seconds"] = time.perf_counter() - started
    return results
