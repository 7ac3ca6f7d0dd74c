"""The results: the table printed and written as markdown, the PASS/FAIL targets, JSON, a chart.

Every ratio divides numbers measured in the same run. ``x limit`` is the method's
median time over the group's limit's median time (1.00x = as fast as just reading
the source); ``pandas speedup`` is the pandas baseline's median time over the
method's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.model import GROUP_LIMIT, GROUP_PANDAS, GROUP_TITLES, Record

RSS_LIMIT_MIB = 300.0
SIZE_LIMIT = 1.10
DELETES_OVERHEAD_LIMIT = 0.10
DAGSTER_OVERHEAD_LIMIT_S = 1.0
MIB = 1024 * 1024


@dataclass
class Target:
    name: str
    passed: bool | None  # None: not measured (skipped or failed)
    detail: str

    @property
    def status(self) -> str:
        return "PASS" if self.passed else ("FAIL" if self.passed is False else "N/A ")

    def line(self) -> str:
        return f"{self.status}  {self.name}: {self.detail}"


def _by_id(records: list[Record]) -> dict[str, Record]:
    return {r.id: r for r in records}


def _seconds(records: dict[str, Record], rid: str) -> float | None:
    record = records.get(rid)
    return record.median_seconds if record else None


def ratio_to_limit(record: Record, records: dict[str, Record]) -> float | None:
    limit = GROUP_LIMIT.get(record.group)
    base = _seconds(records, limit) if limit else None
    own = record.median_seconds
    return own / base if own is not None and base else None


def pandas_speedup(record: Record, records: dict[str, Record]) -> float | None:
    pandas = GROUP_PANDAS.get(record.group)
    base = _seconds(records, pandas) if pandas else None
    own = record.median_seconds
    return base / own if own and base is not None else None


def _fmt(value: float | None, pattern: str, missing: str = "-") -> str:
    return missing if value is None else pattern.format(value)


def _check_text(record: Record) -> str:
    if record.role == "limit":
        return "n/a (writes nothing)"
    if record.error:
        return "n/a (failed)"
    if record.check is None:
        return "not checked"
    if record.check["same"]:
        return "yes"
    return "no (" + "; ".join(record.check["differences"][:3]) + ")"


def table_rows(records: list[Record]) -> list[list[str]]:
    by_id = _by_id(records)
    rows = []
    for r in records:
        if r.error and not r.ok_runs:
            rows.append([r.group, r.label, "FAILED", "-", "-", "-", "-", "-", "-", (r.error or "")[:80]])
            continue
        size = r.output_bytes
        rows.append([
            r.group,
            r.label,
            _fmt(r.median_seconds, "{:.3f}"),
            _fmt(r.rows_per_s, "{:,.0f}"),
            _fmt(r.peak_rss_mib, "{:.0f}"),
            _fmt(r.children_rss_mib, "{:.0f}"),
            _fmt(size / MIB if size is not None else None, "{:.1f}"),
            _fmt(ratio_to_limit(r, by_id), "{:.2f}x"),
            _fmt(pandas_speedup(r, by_id), "{:.2f}x"),
            _check_text(r),
        ])
    return rows


HEADERS = ["group", "method", "median s", "rows/s", "peak RSS MiB", "children RSS MiB",
           "output MiB", "x limit", "pandas speedup", "same rows/values"]


def text_table(records: list[Record]) -> str:
    rows = table_rows(records)
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(HEADERS)]
    widths[-1] = min(widths[-1], 70)
    line = "  ".join(h.ljust(w) for h, w in zip(HEADERS, widths))
    out = [line, "-" * len(line)]
    for row in rows:
        out.append("  ".join(c.ljust(w) if i < len(row) - 1 else c for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(out)


def markdown_table(records: list[Record]) -> str:
    rows = table_rows(records)
    out = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    for row in rows:
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    return "\n".join(out)


# --- targets ------------------------------------------------------------------------------


def _ratio_target(name: str, num: float | None, den: float | None, limit: float, what: str,
                  less_than: bool = False, extra: str = "") -> Target:
    if num is None or not den:
        return Target(name, None, "not measured")
    value = num / den
    passed = value < limit if less_than else value <= limit
    return Target(name, passed, f"{value:.3f} {what} ({num:.3f} s / {den:.3f} s){extra}")


def evaluate_targets(records: list[Record]) -> list[Target]:
    by_id = _by_id(records)

    def s(rid: str) -> float | None:
        return _seconds(by_id, rid)

    targets: list[Target] = []

    # The targets of issue 15: ours end to end (S3, MD5, tracking rows) against the
    # fastest peer writing a local file, and against the limits of the source.
    parallel, copy = s("limit_copy_binary_parallel"), s("limit_copy_binary")
    extra = ""
    if copy and s("ours_full"):
        extra = f"; {s('ours_full') / copy:.2f}x binary COPY"
    if parallel and s("ours_full"):
        streams = by_id["limit_copy_binary_parallel"].ok_runs[-1].get("streams")
        extra += f", {s('ours_full') / parallel:.2f}x the {streams}-stream COPY limit"
    targets.append(_ratio_target(
        "full table extract -> S3 <= DuckDB postgres scanner -> local file", s("ours_full"), s("duckdb_postgres"),
        1.0, "x DuckDB", extra=extra,
    ))
    targets.append(_ratio_target(
        "incremental (1% rows) <= 1.5x its limit (binary COPY of the same rows)", s("ours_incremental"),
        s("limit_copy_binary_incremental"), 1.5, "x the limit",
    ))
    targets.append(_ratio_target(
        "CSV -> S3 <= pandas.read_csv + to_parquet", s("ours_csv"), s("pandas_read_csv"), 1.0, "x pandas",
        extra=f"; {s('ours_csv') / s('limit_pyarrow_read_csv'):.2f}x pyarrow read_csv"
        if s("ours_csv") and s("limit_pyarrow_read_csv") else "",
    ))
    targets.append(_ratio_target(
        "NDJSON -> S3 <= 1.5x DuckDB read_json", s("ours_json"), s("duckdb_read_json"), 1.5, "x DuckDB",
    ))
    pandas_json, ours_json = s("pandas_read_json"), s("ours_json")
    targets.append(
        Target("NDJSON->Parquet >= 2x faster than pandas.read_json(lines=True)", None, "not measured")
        if pandas_json is None or not ours_json
        else Target("NDJSON->Parquet >= 2x faster than pandas.read_json(lines=True)", pandas_json / ours_json >= 2,
                    f"{pandas_json / ours_json:.2f}x faster ({pandas_json:.3f} s vs {ours_json:.3f} s)")
    )
    for r in records:
        if r.role != "ours":
            continue
        rss = r.peak_rss_mib
        targets.append(
            Target(f"peak RSS < 300 MiB: {r.label}", None, "not measured") if rss is None
            else Target(f"peak RSS < 300 MiB: {r.label}", rss < RSS_LIMIT_MIB,
                        f"{rss:.0f} MiB" + (f" (psql children: {r.children_rss_mib:.0f} MiB each at most, "
                                            "separate processes)" if r.children_rss_mib is not None else ""))
        )
    for rid in ("ours_full", "ours_csv", "ours_json"):
        r = by_id.get(rid)
        if r is None:
            continue
        name = f"Parquet size <= 1.10x pyarrow default write: {r.label}"
        if r.output_bytes is None or not r.default_size_bytes:
            targets.append(Target(name, None, "not measured"))
        else:
            value = r.output_bytes / r.default_size_bytes
            targets.append(Target(name, value <= SIZE_LIMIT, f"{value:.3f}x ({r.output_bytes / MIB:.1f} MiB "
                                  f"vs {r.default_size_bytes / MIB:.1f} MiB)"))
    plain, capturing = s("ours_partition"), s("ours_partition_deletes")
    targets.append(
        Target("deletes capture adds <= 10% to a full extract", None, "not measured")
        if plain is None or capturing is None or not plain
        else Target("deletes capture adds <= 10% to a full extract", capturing / plain - 1 <= DELETES_OVERHEAD_LIMIT,
                    f"+{(capturing / plain - 1) * 100:.1f}% ({capturing:.3f} s vs {plain:.3f} s, same partition)")
    )
    dagster, bare = s("ours_dagster_asset"), s("ours_full_small")
    targets.append(
        Target("Dagster overhead < 1 s", None, "not measured") if dagster is None or bare is None
        else Target("Dagster overhead < 1 s", dagster - bare < DAGSTER_OVERHEAD_LIMIT_S,
                    f"{dagster - bare:.3f} s (materialize {dagster:.3f} s - bare extract_table_full {bare:.3f} s)")
    )
    checked = [r for r in records if r.role == "ours" and r.check is not None]
    if checked:
        bad = [r.label for r in checked if not r.check["same"]]
        targets.append(Target("ours: outputs hold the reference rows and values", not bad,
                              "all match" if not bad else f"differ: {bad}"))
    return targets


# --- files ---------------------------------------------------------------------------------


def type_notes(records: list[Record]) -> list[str]:
    lines = []
    for r in records:
        if r.check and (r.check["type_notes"] or r.check["ignored_columns"]):
            parts = list(r.check["type_notes"])
            if r.check["ignored_columns"]:
                parts.append(f"extra columns ignored: {r.check['ignored_columns']}")
            lines.append(f"{r.label} ({r.group}): " + "; ".join(parts))
    return lines


def write_json(path: Path, meta: dict[str, Any], records: list[Record], targets: list[Target],
               extras: dict[str, Any]) -> None:
    data = {
        "meta": meta,
        "records": [r.to_json() for r in records],
        "targets": [{**asdict(t), "status": t.status.strip()} for t in targets],
        **extras,
    }
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def write_markdown(path: Path, meta: dict[str, Any], records: list[Record], targets: list[Target],
                   extras: dict[str, Any]) -> None:
    lines = [
        f"# Ingestion benchmark ({meta['mode']} run)",
        "",
        (f"Run {meta['started']} -> {meta['finished']} on {meta['machine']}; "
         f"table {meta['rows']:,} rows, CSV/NDJSON {meta['csv_rows']:,} rows, "
         f"{meta['repeat']} repetition(s), median shown."),
        f"Object store: {meta['object_store']}. dlt: {meta['dlt']}.",
        *([(f"1-minute load average around the runs: {meta['loadavg_1m'][0]:.1f} to {meta['loadavg_1m'][1]:.1f} "
            f"({meta['machine'].split(',')[0]}); above the core count, other processes competed for the CPU.")]
          if meta.get("loadavg_1m") else []),
        "",
        ("Times are the work inside each method's own process (imports excluded). "
         "`x limit` = median time / the group's limit's median time; `pandas speedup` = "
         "pandas' median time / this method's. Peak RSS is `ru_maxrss` of the method's process; "
         "children RSS is the largest child process (psql for ours and the COPY limits)."),
        "",
        markdown_table(records),
        "",
        "## Targets",
        "",
        *(["_Quick mode: on data this small, fixed per-run costs dominate; the time ratios are not meaningful._", ""]
          if meta["mode"] == "quick" else []),
        *[f"- **{t.status.strip()}** {t.name}: {t.detail}" for t in targets],
        "",
    ]
    memory = extras.get("memory_scaling")
    if memory:
        lines += ["## Peak RSS of extract_table_full by table size", "",
                  "| rows | peak RSS MiB | psql children MiB | median s |", "|---|---|---|---|"]
        lines += [f"| {m['rows']:,} | {m['peak_rss_mib']:.0f} | {_fmt(m['children_rss_mib'], '{:.0f}')} | "
                  f"{m['median_seconds']:.3f} |" for m in memory]
        lines.append("")
    plan = extras.get("incremental_plan")
    if plan:
        lines += ["## Incremental predicate (EXPLAIN)", "",
                  f"Before the first timed run, watermark index used: **{'yes' if plan['index_used'] else 'no'}**", "",
                  *[f"- run {r['run']}: index used {'yes' if r['index_used'] else 'NO'}, stored catch-up floor "
                    f"`{r['catchup_floor']}`, snapshot of the previous run `{r['last_snapshot']}`"
                    for r in extras.get("incremental", {}).get("runs", [])], "",
                  "```sql", plan["exact_sql"], "```", "", "```", *plan["exact_plan"], "```", "",
                  "Plain predicate:", "", "```sql", plan["simple_sql"], "```", "", "```", *plan["simple_plan"], "```", ""]
    notes = type_notes(records)
    if notes:
        lines += ["## Type notes (values equal after normalisation, types differ from the reference)", ""]
        lines += [f"- {n}" for n in notes]
        lines.append("")
    path.write_text("\n".join(lines))


def write_chart(path: Path, records: list[Record], title: str) -> None:
    """Throughput (rows/s) per method, one panel per group, labelled with the ratio to the limit.

    ``cat`` (page-cache read speed, two orders of magnitude above any parser) stays in
    the table but not in the chart; the Dagster panel shows seconds, not rows/s.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_id = _by_id(records)
    groups = [g for g in ("table", "incremental", "csv", "ndjson", "dagster") if any(r.group == g for r in records)]
    if not groups:
        return
    colors = {"limit": "#9e9e9e", "baseline": "#5b8fd6", "ours": "#e07b39"}
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, 2.2 + 1.6 * len(groups) + 0.35 * len(records)),
                             squeeze=False)
    for ax, group in zip(axes[:, 0], groups):
        members = [r for r in records if r.group == group and r.rows_per_s and r.method != "limit_cat"]
        labels = [r.label for r in members]
        seconds_panel = group == "dagster"
        values = [r.median_seconds if seconds_panel else r.rows_per_s for r in members]
        ax.barh(labels, values, color=[colors[r.role] for r in members])
        ax.invert_yaxis()
        ax.set_title(GROUP_TITLES.get(group, group), fontsize=10, loc="left")
        ax.set_xlabel("seconds (lower is better)" if seconds_panel else "rows/s (higher is better)", fontsize=8)
        ax.tick_params(labelsize=8)
        top = max(values) if values else 1
        for i, r in enumerate(members):
            ratio = ratio_to_limit(r, by_id)
            text = f"{r.median_seconds:.2f} s" + (f", {ratio:.2f}x limit" if ratio is not None else "")
            ax.text(values[i] + top * 0.01, i, text, va="center", fontsize=7)
        ax.set_xlim(0, top * 1.35)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    fig.legend(handles, list(colors), loc="upper right", fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
