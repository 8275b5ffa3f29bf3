"""How t5core's command-line programs end: one `error:` line (status 2) for a user's mistake, a
traceback for a bug; and `command`, which makes t5core's programs (docs/architecture.md, "How
programs end")."""

from __future__ import annotations

import functools
import logging as std_logging
import os
import sys
import traceback

from absl import app, flags, logging

from t5core.dataclass_flags import flag_problems
from t5core.errors import FlagError, T5CoreError

VERBOSE_ENV = "T5CORE_VERBOSE"
USER_ERROR_STATUS = 2
# Besides t5core's own errors, a path the user named that is not there, is there already (an
# output that would be overwritten) or is not readable is theirs to fix; the message names it.
USER_ERRORS = (T5CoreError, FileNotFoundError, FileExistsError, NotADirectoryError,
               IsADirectoryError, PermissionError)


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

    @functools.wraps(main)
    def guarded(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except USER_ERRORS as err:
            sys.exit(report(err))

    return guarded


def _define_verbose(flag_values):
    if "verbose" not in flag_values:
        flags.DEFINE_bool("verbose", False, "Show the traceback of an error in the input too.",
                          flag_values=flag_values)


def quiet_libraries() -> None:
    """Library INFO logs (TensorFlow's saver and SavedModel writer: shard timings, renamed input
    names of every weight) off a program's console; --verbose keeps them."""
    if verbose():
        return
    logging.set_verbosity(logging.WARNING)
    std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)


def run(main):
    """absl's `app.run(main)`, with flag errors and user errors reported in one line (status 2)."""
    _define_verbose(flags.FLAGS)

    def parse(argv):
        try:
            return flags.FLAGS(argv)
        except flags.Error as err:
            print(f"error: {err}\n(run with --helpfull to list the flags)", file=sys.stderr)
            sys.exit(USER_ERROR_STATUS)

    def main_with_usage_errors(argv):
        quiet_libraries()
        try:
            return main(argv)
        except app.UsageError as err:
            sys.exit(report(err))

    app.run(guard(main_with_usage_errors), flags_parser=parse)


def parse_flags(define_flags, argv, takes_arguments=True):
    """Parses `argv` (no program name) into `define_flags`' flags; absl's global FLAGS untouched.

    Returns:
      (the parsed `absl.flags.FlagValues`, the non-flag arguments; only with `takes_arguments`).

    Raises:
      SystemExit(2): a flag absl refuses or an unexpected argument, after `error: ...` on stderr.
    """
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    _define_verbose(flag_values)
    try:
        rest = flag_values(["program", *map(str, argv)])[1:]
    except flags.Error as err:
        rest, problem = [], str(err)
    else:
        problem = None if takes_arguments or not rest else _unexpected(rest)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(USER_ERROR_STATUS)
    return flag_values, rest


def _unexpected(arguments) -> str:
    return f"Unexpected arguments: {' '.join(arguments)}"


# Which flags name where a program writes: flag name -> "file" or "folder" (see mark_outputs).
_OUTPUT_KIND = "t5core_output"
STDOUT = "-"


def mark_outputs(flag_values, files=(), folders=()) -> None:
    """Declares the flags naming a file or folder the program writes: `command` creates their
    folders and refuses an unwritable path (FlagError naming the flag) before the work starts."""
    for kind, names in (("file", files), ("folder", folders)):
        for name in names:
            setattr(flag_values[name], _OUTPUT_KIND, kind)


def output_flags(flag_values) -> dict[str, str]:
    """{flag name: "file" or "folder"} of the flags `mark_outputs` declared."""
    return {name: getattr(flag_values[name], _OUTPUT_KIND) for name in flag_values
            if hasattr(flag_values[name], _OUTPUT_KIND)}


def prepare_outputs(flag_values) -> list[str]:
    """Creates the folders every given output path needs, or says in one error why it cannot;
    returns the folders it created, innermost first."""
    from t5core import file_writes  # imports TensorFlow: not before a program needs it

    file_writes.forget_reads()  # a program's outputs may replace nothing it reads from here on
    created = []
    try:
        _make_output_folders(flag_values, created)
    except FlagError:  # a refused program leaves no folder, whichever flag was refused
        file_writes.remove_empty_folders(sorted(created, key=len, reverse=True))
        raise
    return sorted(created, key=len, reverse=True)  # a folder before those around it


def _make_output_folders(flag_values, created: list) -> None:
    """prepare_outputs' work, adding each folder it creates to `created` as it goes."""
    from t5core import file_writes  # as prepare_outputs

    for name, kind in output_flags(flag_values).items():
        path = flag_values[name].value
        if not path or path == STDOUT:
            continue
        path = os.fspath(path)
        # A folder output is created by its program (which may want it new): its parent here.
        parent = os.path.dirname(path.rstrip("/"))
        if not file_writes.is_remote(path):
            if kind == "file" and os.path.isdir(path):
                raise FlagError(f"--{name}={path} is a folder; give the path of a file")
            if kind == "folder" and os.path.exists(path) and not os.path.isdir(path):
                raise FlagError(f"--{name}={path} is a file; give the path of a folder")
        try:
            missing = parent
            while missing and not file_writes.is_remote(path) and not os.path.exists(missing):
                created.append(missing)
                missing = os.path.dirname(missing)
            if parent:
                file_writes.make_dirs(parent)
        except OSError as err:
            raise FlagError(f"--{name}={path}: cannot create its folder {parent} "
                            f"({err.strerror or err})") from None
        if not file_writes.is_remote(path) and not os.access(parent or ".", os.W_OK):
            raise FlagError(f"--{name}={path}: its folder {parent or '.'} is not writable")


def command(define_flags, body, argv=None, *, doc=None, takes_arguments=False):
    """Runs a program: `body(flags)` with the flags `define_flags(flag_values)` defines.

    Args:
      define_flags: defines the program's flags in the `absl.flags.FlagValues` it is given.
      body: does the work (with `takes_arguments`, also gets the non-flag arguments); returns
        the exit status (None: 0). A flag given where it has no effect
        (`dataclass_flags.flag_problems`) is a FlagError (a note where harmless), and output
        flags (`mark_outputs`) are prepared, before it runs.
      argv: None: absl parses sys.argv and the process exits through `run` (a user error: one
        line, status 2). A list (without the program name): see `parse_flags`; `body`'s return
        value is returned and its exceptions propagate.
      doc: the usage text for --help (the module docstring).
      takes_arguments: whether non-flag arguments are allowed (else a usage error).

    Returns:
      With a list `argv`, what `body` returns. With None it does not return.
    """
    def call(flag_values, rest):
        from t5core import file_writes  # as prepare_outputs

        ignored = flag_problems(flag_values)
        if ignored:
            raise FlagError("; ".join(ignored))
        for note in flag_problems(flag_values, refuse=False):
            print(f"note: {note}", file=sys.stderr)
        # Before the work, which may take hours; a refused or failed program leaves no folder.
        created, status = prepare_outputs(flag_values), 1
        try:
            status = body(flag_values, rest) if takes_arguments else body(flag_values)
            return status
        finally:
            if status:
                file_writes.remove_empty_folders(created)

    if argv is not None:
        return call(*parse_flags(define_flags, argv, takes_arguments))

    def main(argv_):
        if len(argv_) > 1 and not takes_arguments:
            raise app.UsageError(_unexpected(argv_[1:]))
        return call(flags.FLAGS, argv_[1:])

    # The program's own flags, as define_flags defines them in an empty set: the modules it
    # imports meanwhile (TensorFlow's TPU and absl's test flags) add flags to absl's global FLAGS
    # that are none of the program's.
    own = flags.FlagValues()
    define_flags(own)
    define_flags(flags.FLAGS)
    # --help lists the key flags of the main module: make the program's flags its own, as if the
    # script that was started had defined them.
    for name in own:
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])
    if doc:
        sys.modules["__main__"].__doc__ = doc
    run(main)


def run_main(main):
    """Starts an argparse program (benchmarks/*.py): `main(argv)` gives the exit status, a user
    error one `error:` line (status 2); --verbose shows tracebacks."""
    argv = sys.argv[1:]
    if any(arg in VERBOSE_ARGS for arg in argv):
        os.environ[VERBOSE_ENV] = "1"
        argv = [arg for arg in argv if arg not in VERBOSE_ARGS]
    sys.exit(guard(main)(argv))
