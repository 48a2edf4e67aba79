"""Command line: ``python -m tinylm gradcheck|train|generate|evaluate ...``.

    python -m tinylm train gpt|rnnlm|classifier|translator ...   (see tinylm/cli/)
    python -m tinylm generate --checkpoint DIR --prompt TEXT
    python -m tinylm evaluate --checkpoint DIR

    python -m tinylm gradcheck              every check, as a table; exit 1 if any fails
    python -m tinylm gradcheck layer_norm   only the checks whose name contains "layer_norm"
    python -m tinylm gradcheck --list       the names of the checks
    python -m tinylm gradcheck --second-order   the same cases, second derivatives

    python -m tinylm chapters               the numbered chapters, one line each
    python -m tinylm chapters 9 [--quick --step --device cpu --out DIR]   run one
    python -m tinylm chapters --all [--quick]   all in order, then a summary table
"""
import argparse
import sys
import time


def _gradcheck(args):
    from .gradcheck import format_table, select
    cases = select(args.names)
    if args.list:
        print("\n".join(c.name for c in cases))
        return 0
    if not cases:
        print(f"no gradient check matches {' '.join(args.names)!r}; "
              f"see python -m tinylm gradcheck --list", file=sys.stderr)
        return 2
    start = time.perf_counter()
    if args.second_order:
        results = [case.run_second_order(seed=args.seed) for case in cases if case.second_order]
    else:
        results = [case.run(seed=args.seed) for case in cases]
    print(format_table(results))
    failed = [r.name for r in results if not r.passed]
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed "
          f"({time.perf_counter() - start:.1f} s; float64, central differences, eps=1e-6)")
    return 1 if failed else 0


def _chapters(args):
    from .chapter_runner import main as chapters_main
    from .errors import TinyLMError
    try:
        return chapters_main(args)
    except TinyLMError as exc:
        print(f"tinylm: error: {exc}", file=sys.stderr)
        return 2


CLI_COMMANDS = ("train", "generate", "evaluate")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in CLI_COMMANDS:
        from .cli import main as cli_main
        return cli_main(argv)
    parser = argparse.ArgumentParser(prog="python -m tinylm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("gradcheck", help="finite-difference gradient checks, as a table")
    check.add_argument("names", nargs="*", help="run only checks whose name contains one of these")
    check.add_argument("--list", action="store_true", help="list the check names and exit")
    check.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    check.add_argument("--second-order", action="store_true",
                       help="check second derivatives (tinylm.grad(..., create_graph=True))")
    check.set_defaults(handler=_gradcheck)
    chapters = commands.add_parser(
        "chapters", help="list the chapters, run one, or run all with a summary table",
        description="Without arguments: the list of chapters. With a number: run that "
                    "chapter; options after the number go to the chapter (--quick, --step, "
                    "--device, --out). --all: every chapter in order and a summary table.")
    chapters.add_argument("number", nargs="?", help="the chapter to run, e.g. 9")
    chapters.add_argument("--all", action="store_true", help="run every chapter in order")
    chapters.set_defaults(handler=_chapters)
    for name in CLI_COMMANDS:       # listed for --help; tinylm.cli parses them (above)
        commands.add_parser(name, help=f"see python -m tinylm {name} --help", add_help=False)
    args, extra = parser.parse_known_args(argv)
    if args.command != "chapters" and extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.options = extra           # a chapter's own options (--quick, --step, --out, ...)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
