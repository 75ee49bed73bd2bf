"""Human-readable tables of link prediction metrics."""
from typing import Dict

COLUMNS = ("mrr", "mr", "hits@1", "hits@3", "hits@10")


def metrics_table(results: Dict[str, Dict]) -> str:
    """A Markdown table: one row per split and direction (both, head, tail), then one
    per relation category of each split."""
    header = "| split | part | " + " | ".join(c.upper() if c != "mrr" else "MRR"
                                           for c in COLUMNS) + " | count |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 3)]

    def row(split, part, m):
        values = " | ".join("-" if m[c] is None else f"{m[c]:.1f}" if c == "mr"
                            else f"{m[c]:.4f}" for c in COLUMNS)
        lines.append(f"| {split} | {part} | {values} | {m['count']} |")

    for split, metrics in results.items():
        row(split, "both", metrics)
        for direction in ("head", "tail"):
            row(split, direction, metrics[direction])
        for category, m in metrics.get("categories", {}).items():
            if m["count"]:
                row(split, category, m)
    rank_type = next(iter(results.values()), {}).get("rank_type", "realistic")
    return "\n".join(lines) + f"\n\nFiltered ranks, {rank_type} ties (ties count half).\n"
