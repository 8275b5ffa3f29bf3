"""How t5core's command-line programs end: one clear line for a user's mistake, a traceback for a bug.

A user's mistake (a bad flag, a missing file, a bad data row or checkpoint; see `t5core.errors`)
prints `error: <message>` on stderr and exits with status 2. The traceback is shown too with
`--verbose` or the environment variable T5CORE_VERBOSE=1. Any other exception is a bug and
keeps its traceback.

    from t5core import cli

    def main(argv): ...

    if __name__ == "__main__":
        cli.run(main)          # absl: parses the flags, then calls main(argv)

An argparse program ends with `cli.run_main(main)` instead: `main(argv)` gets the arguments
without --verbose.
"""

from __future__ import annotations

import os
import sys
import traceback

from t5core.errors import T5CoreError

VERBOSE_ENV = "T5CORE_VERBOSE"
USER_ERROR_STATUS = 2
# Besides t5core's own errors, a path the user named that is not there (or not readable) is
# theirs to fix; Python's message names the path.
USER_ERRORS = (T5CoreError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
               PermissionError)


VERBOSE_ARGS = ("--verbose", "--verbose=true", "--verbose=1")


def verbose() -> bool:
    """True when the user asked for tracebacks (--verbose on the command line or T5CORE_VERBOSE)."""
    if os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes"):
        return True
    return any(arg in VERBOSE_ARGS for arg in sys.argv[1:])


def report(err: BaseException) -> int:
    """Prints a user error as `error: ...` (with its traceback when verbose); returns the status."""
    if verbose():
        traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
    message = str(err) or type(err).__name__
    print(f"error: {message}", file=sys.stderr)
    if not verbose():
        print(f"(run with --verbose or {VERBOSE_ENV}=1 for the traceback)", file=sys.stderr)
    return USER_ERROR_STATUS


def guard(main):
    """Wraps `main` so that a user error ends the program with `report` instead of a traceback."""

    def guarded(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except USER_ERRORS as err:
            sys.exit(report(err))

    guarded.__name__ = getattr(main, "__name__", "main")
    guarded.__doc__ = getattr(main, "__doc__", None)
    return guarded


def run(main):
    """absl's `app.run(main)`, with flag errors and user errors reported in one line (status 2)."""
    from absl import app, flags

    if "verbose" not in flags.FLAGS:
        flags.DEFINE_bool("verbose", False, "Show the traceback of an error in the input too.")

    def parse(argv):
        try:
            return flags.FLAGS(argv)
        except flags.Error as err:
            print(f"error: {err}\n(run with --helpfull to list the flags)", file=sys.stderr)
            sys.exit(USER_ERROR_STATUS)

    def main_with_usage_errors(argv):
        try:
            return main(argv)
        except app.UsageError as err:
            sys.exit(report(err))

    app.run(guard(main_with_usage_errors), flags_parser=parse)


def run_main(main):
    """Runs an argparse program's `main(argv)`: user errors end in one line (status 2).

    `--verbose` is taken off the arguments before `main` parses them (its parser need not know
    it) and shows tracebacks; `main`'s return value is the exit status.
    """
    argv = sys.argv[1:]
    if any(arg in VERBOSE_ARGS for arg in argv):
        os.environ[VERBOSE_ENV] = "1"
        argv = [arg for arg in argv if arg not in VERBOSE_ARGS]
    sys.exit(guard(main)(argv))
