"""`ponder check` (pre-flight checks of a spec) and `ponder data check` (a data file with its column mapping)."""

from __future__ import annotations

from engine.cli import EXIT_FAILED, _out, load_spec_or_say


def cmd_check(args) -> int:
    from engine.preflight import check

    spec = load_spec_or_say(args.spec)
    if spec is None:
        return EXIT_FAILED
    findings = check(spec)
    for finding in findings:
        _out(str(finding))
    errors = sum(f.level == "error" for f in findings)
    _out(f"{errors} error(s), {sum(f.level == 'warning' for f in findings)} warning(s)")
    return EXIT_FAILED if errors else 0


def cmd_data_check(args) -> int:
    from engine.data.files import validate_file

    report = validate_file(args.file, args.question, args.answer, reasoning=args.reasoning,
                           difficulty=args.difficulty)
    if args.json:
        import json

        _out(json.dumps(report.as_dict(max_problems=args.max_problems)))  # ASCII: any stdout encoding
    else:
        _out(report.format(max_problems=args.max_problems))
    return 0 if report.ok else EXIT_FAILED
