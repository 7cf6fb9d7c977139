"""``verinet report RECORDS`` and ``verinet merge RECORDS... --out FILE``: the reports of
a record file (``certify``/``pac`` ``--records``), at any time -- also while its run goes
on, or after it was cut off -- and the record files of a run's shards combined into one.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from verinet.cli.options import add_outputs

log = logging.getLogger("verinet")


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    r = sub.add_parser("report", parents=[common],
                       help="the table, JSON, CSV and plot of a record file (--records)")
    r.add_argument("records", help="record file written by certify/pac --records")
    add_outputs(r, out="JSON report", plot="PNG of the sandwiches and robust-accuracy curves")
    r.add_argument("--summary", action="store_true", help="the summary only, no table")
    m = sub.add_parser("merge", parents=[common],
                       help="combine the record files of a run's shards (--shard I/N)")
    m.add_argument("records", nargs="+", help="the shards' record files")
    m.add_argument("--out", required=True, help="the merged record file (must not exist)")


def cmd_report(args: argparse.Namespace) -> int:
    from verinet.report import certify as rep
    from verinet.report.paths import check_outputs
    from verinet.report.records import read_records, report_from_records

    check_outputs((("--out", args.out), ("--csv", args.csv), ("--plot", args.plot)))
    rs = read_records(args.records)
    report = report_from_records(rs, args.records)
    if rs.header.shard is not None:
        log.warning("%s holds shard %s of its run only", args.records, rs.header.shard.label())
    text = rep.format_summary(report) if args.summary else rep.format_table(report)
    sys.stdout.write(text)
    sys.stdout.flush()
    if args.out is not None:
        rep.write_json(report, args.out)
    if args.csv is not None:
        rep.write_csv(report, args.csv)
    if args.plot is not None:
        from verinet.report.plots import plot_report

        plot_report(report, args.plot)
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from verinet.report.paths import check_outputs
    from verinet.report.records import merge_records

    check_outputs((("--out", args.out),))
    rs = merge_records(args.records, args.out)
    shard = rs.header.shard
    sys.stdout.write(f"merged {len(args.records)} file(s), {len(rs.samples)} samples, into "
                     f"{args.out}" + ("" if shard is None else
                                      f" (parts {shard.label()} of the run)") + "\n")
    return 0
