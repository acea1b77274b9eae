"""The ``arrears`` command (installed with the project). Subcommands register themselves in
``COMMANDS``: add a ``(name, help, setup)`` entry whose ``setup(parser)`` sets ``func``."""
from __future__ import annotations

import argparse
import json
import sys
from datetime import date


def _engine():
    from arrears.db import connect
    from arrears.settings import Settings
    return connect(Settings.load().db_url)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def audit_account(args) -> int:
    from arrears.audit.timeline import account_timeline, replay_timeline
    with _engine().connect() as conn:
        steps = account_timeline(conn, args.account_id)
        replays = replay_timeline(conn, args.account_id)
    if not steps and not replays:
        print(f"no audit entries for account {args.account_id} (check the id, or run the "
              "cycle's audit task for the dates you expect)", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"steps": [s.__dict__ for s in steps],
                          "replays": [s.__dict__ for s in replays]}, ensure_ascii=False, indent=2))
        return 0
    print(f"account {args.account_id}: {len(steps)} audit entries")
    _print_steps(steps)
    if replays:
        print(f"\nreplays (recomputed by backfills and dry runs; nothing of it happened): "
              f"{len(replays)} entries")
        _print_steps(replays)
    return 0


def _print_steps(steps) -> None:
    for s in steps:
        print(f"{s.cycle_date}  #{s.seq:<6} {s.kind:<19} {s.what}")
        print(f"{'':12}  rule: {s.rule}")
        print(f"{'':12}  by {s.run_id} / {s.task_id} / try {s.try_number}")


def audit_verify(args) -> int:
    from arrears.audit import checkpoint
    with _engine().connect() as conn:
        check = checkpoint.verify_full(conn) if args.full else checkpoint.verify_daily(conn)
    print(check.describe())
    return 0 if check.ok else 1


def audit_cycle(args) -> int:
    from arrears.audit.timeline import cycle_summary
    with _engine().connect() as conn:
        summary = cycle_summary(conn, args.cycle_date)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
        return 0
    print(f"cycle {summary['cycle_date']}: {summary['entries']} audit entries")
    for title in ("by_kind", "decisions_by_stage", "messages"):
        if summary[title]:
            print(f"  {title.replace('_', ' ')}: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(summary[title].items())))
    for run_id in summary["runs"]:
        print(f"  run {run_id}")
    return 0 if summary["entries"] else 1


def _setup_audit(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="audit_command", required=True)
    p = sub.add_parser("account", help="an account's timeline with the rule behind each step")
    p.add_argument("account_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=audit_account)
    p = sub.add_parser("verify", help="check the audit trail's hash chain from the last "
                       "checkpoint (--full: from the first entry, and every checkpoint)")
    p.add_argument("--full", action="store_true",
                   help="read the whole chain and check every checkpoint and its anchor file")
    p.set_defaults(func=audit_verify)
    p = sub.add_parser("cycle", help="what the audit trail holds for one cycle date")
    p.add_argument("cycle_date", type=_date)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=audit_cycle)


def whatif(args) -> int:
    from arrears.policy import PolicyError
    from arrears.settings import Settings
    from arrears.whatif import WhatIfError
    from arrears.whatif.tasks import whatif as run
    if args.date_to < args.date_from:
        print(f"--from {args.date_from} is after --to {args.date_to}", file=sys.stderr)
        return 2
    try:
        headline = run(Settings.load(), args.portfolio, args.date_from, args.date_to,
                       progress=lambda line: print(line, file=sys.stderr, flush=True))
    except (WhatIfError, PolicyError) as exc:
        print(f"what-if not run: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(headline, ensure_ascii=False, indent=2))
    return 0


def _setup_whatif(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--portfolio", required=True,
                        help="policy file include/policy/<portfolio>.toml to try")
    parser.add_argument("--from", dest="date_from", type=_date, required=True, help="D1 (YYYY-MM-DD)")
    parser.add_argument("--to", dest="date_to", type=_date, required=True, help="D2 (YYYY-MM-DD)")
    parser.set_defaults(func=whatif)


def experiment_report(args) -> int:
    from arrears.report.experiment import UnknownExperiment, as_text
    from arrears.report.experiment import experiment_report as build
    try:
        report = build(_engine(), args.experiment_id, args.as_of)
    except UnknownExperiment as exc:
        print(f"{exc}: check the id in the policy file's [experiment] and that a cycle ran "
              "with it", file=sys.stderr)
        return 1
    print(json.dumps(report, ensure_ascii=False, indent=2) if args.json else as_text(report))
    return 0


def _setup_experiment(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="experiment_command", required=True)
    p = sub.add_parser("report", help="per arm: accounts, cure rate, collected, messages, "
                       "opt-outs, disputes, roll rates; the cure-rate difference with a 95 % CI")
    p.add_argument("experiment_id")
    p.add_argument("--as-of", type=_date, default=None, help="as of this cycle date (default: the latest)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=experiment_report)


def retention(args) -> int:
    from arrears.settings import outbox_root
    from arrears.policy.retention import load_retention
    from arrears.retention import purge
    rules = load_retention(args.portfolio)
    print(f"retention as of {args.as_of} (policy {args.portfolio}: contact evidence "
          f"{rules.contact_evidence_years} y, negative credit {rules.negative_credit_years} y, "
          f"raw quarantined rows {rules.quarantine_raw_days} d){' - dry run' if args.dry_run else ''}",
          file=sys.stderr)
    summary = purge.run(_engine(), outbox_root(), args.as_of, rules, dry_run=args.dry_run,
                        run_id=f"cli:{args.as_of}", task_id="arrears retention")
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    verb = "would purge" if args.dry_run else "purged"
    for category in purge.CATEGORIES:
        cutoff = summary["cutoffs"].get(category)
        print(f"{category:<16} {verb} {summary['purged'][category]:>8}"
              + (f"   (dated on or before {cutoff})" if cutoff else ""))
    if not args.dry_run:
        print(f"audit trail: {summary['audit_entries']} retention entries appended")
    return 0


def _setup_retention(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--as-of", type=_date, required=True, dest="as_of",
                        help="the day the retention periods are counted to (YYYY-MM-DD)")
    parser.add_argument("--dry-run", action="store_true", help="count only, purge nothing")
    parser.add_argument("--portfolio", default="default", help="policy file (include/policy/)")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=retention)


def _delegate(module: str):
    """A subcommand that hands its arguments to ``<module>.main(argv)``."""
    def setup(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("args", nargs=argparse.REMAINDER, help="see `arrears <command> --help`")

        def run(args) -> int:
            from importlib import import_module
            return import_module(module).main(args.args)
        parser.set_defaults(func=run)
    return setup


COMMANDS = [
    ("audit", "the audit trail: account timelines, chain verification, cycle summaries",
     _setup_audit),
    ("whatif", "replay a policy file over recorded cycle dates into <outbox>/whatif/<id>/ "
     "(contacts nobody, changes nothing real)", _setup_whatif),
    ("experiment", "champion/challenger: experiment report ID", _setup_experiment),
    ("bureau", "read back and verify a credit-bureau file: bureau verify|dump <file>",
     _delegate("arrears.batches.bureau")),
    ("manifest", "verify a batch folder against its manifest: manifest verify <folder>",
     _delegate("arrears.batches.manifest")),
    ("retention", "purge what the retention policy no longer keeps: retention --as-of D "
     "[--dry-run]", _setup_retention),
    ("quarantine", "export a cycle date's quarantined rows as CSV: quarantine <D> [--out FILE]",
     _delegate("arrears.ingest.quarantine")),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arrears", description="The arrears collection cycle's command line. The database "
        "is the arrears_db connection (AIRFLOW_CONN_ARREARS_DB).")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text, setup in COMMANDS:
        setup(sub.add_parser(name, help=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `arrears audit account X | head`: the reader had enough
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
