"""The trust boundary for reads: every path that comes from inside a file, and every size a file
declares, is checked here before anything is opened or allocated (docs/security.md; what is
trusted: docs/architecture.md, Reads).
"""

from __future__ import annotations

import gzip
import json
import math
import os
import re
import reprlib
import stat
import zlib

import tensorflow as tf

from t5core import compat, file_writes
from t5core.errors import CheckpointError, DataError, ModelDirError, UserFileNotFoundError

MAX_DIMS = 64  # numpy's own limit on an array's dimensions
_READ_CHUNK = 1 << 20

# The budgets: the largest size t5core accepts from a file, whatever the file says. Each is far
# above every public T5 (mT5-XXL: 13e9 parameters, a 250112-piece vocabulary).
BUDGETS = {
    # parameters of a model a config.json (with run.json) describes, before it is built
    "model_parameters": 16_000_000_000,
    # bytes of one line of a data file, after decompression
    "line_bytes": 16 << 20,
    # bytes of a structured data file read whole (TSV, JSONL, CoNLL), after decompression
    "data_file_bytes": 4 << 30,
    # entries of a tokenizer vocabulary (tokenizer.json pieces, added tokens)
    "vocab_entries": 4_000_000,
    # a model beyond the tensors of the checkpoint it is loaded from, in parameters (seed states)
    "parameters_beyond_checkpoint": 1_000_000,
    # bytes of a file read whole into memory (config.json, tokenizer.json, spiece.model, an
    # index, a gin file, a train log); mT5's tokenizer.json, the largest, is 16 MiB
    "whole_file_bytes": 1 << 30,
}

# JSON's integers past this are refused: no size, offset or count t5core reads comes near it,
# and Python would carry one on until a float conversion or a message overflows.
MAX_FILE_INT = 1 << 63


class _Short(reprlib.Repr):
    def repr_int(self, x, level):
        # repr() of an int of thousands of digits raises (sys.get_int_max_str_digits).
        return f"<an integer of {x.bit_length()} bits>" if x.bit_length() > 256 \
            else super().repr_int(x, level)


_repr = _Short()
_repr.maxstring = _repr.maxother = 60
_repr.maxlevel = 3


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint asks to run pickled code or to read a file outside the checkpoint."""


def shown(value):
    """A short, bounded repr of a value read from a hostile file (no deep recursion)."""
    return _repr.repr(value)


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def shape_problem(shape):
    """Why `shape` is not a list (or tuple) of at most 64 non-negative integers, or None."""
    if not isinstance(shape, (list, tuple)):
        return f"shape {shown(shape)} is not a list of sizes"
    if len(shape) > MAX_DIMS:
        return f"shape has {len(shape)} dimensions (at most {MAX_DIMS})"
    if not all(is_int(d) and d >= 0 for d in shape):
        return f"shape {shown(shape)} holds something other than sizes >= 0"
    return None


def element_count(shape):
    """The exact number of elements (Python integers: no int64 overflow)."""
    return math.prod(shape)


# ----------------------------------------------------------------------------- opening files


def _not_a_file(mode):
    """Why a file of `mode` is not one t5core reads, or None for a regular file. A FIFO blocks a
    read until some writer comes, a device (/dev/zero, /dev/urandom) never ends."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory, not a file"
    kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device")
    return f"{kind}, not a regular file; t5core reads only regular files"


def open_file(path, error=DataError):
    """A binary file object of the local or remote file `path`, refused with `error` naming it
    when it cannot be opened (missing, a link loop, permission) or is not a regular file.

    The file is opened without blocking and checked through its descriptor, so a FIFO put in a
    file's place neither hangs the open nor slips in between a check and the open.
    """
    path = os.fspath(path)
    if is_remote(path):
        return tf.io.gfile.GFile(path, "rb")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UserFileNotFoundError(f"{path}: no such file") from None
    except OSError as err:
        raise error(f"{path}: cannot be read ({err.strerror})") from None
    status = os.fstat(fd)
    problem = _not_a_file(status.st_mode)
    if problem:
        os.close(fd)
        raise error(f"{path}: is {problem}")
    file_writes.note_read(status)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def present(path):
    """Whether anything is at `path`: a file, or a link that is broken or loops (which
    tf.io.gfile.exists reads as nothing there, so a reader would take the file as absent rather
    than name what is wrong with it)."""
    path = os.fspath(path)
    return tf.io.gfile.exists(path) or (not is_remote(path) and os.path.lexists(path))


def check_file(path, error=DataError):
    """Refuses (`error`) what `open_file` refuses; for a library that opens `path` itself."""
    open_file(path, error).close()


def read_bytes(path, error=DataError, limit=None):
    """The bytes of the file `path` (`open_file`'s checks), refused with `error` past `limit`
    (BUDGETS["whole_file_bytes"] by default) before more than that is held."""
    limit = BUDGETS["whole_file_bytes"] if limit is None else limit
    parts, held = [], 0
    try:
        with open_file(path, error) as f:
            # In chunks: read(n) allocates n bytes before reading, whatever the file holds.
            while held <= limit:
                part = f.read(min(_READ_CHUNK, limit + 1 - held))
                if not part:
                    break
                parts.append(part)
                held += len(part)
    except (OSError, tf.errors.OpError) as err:  # an I/O error, or a remote file system's
        raise error(f"{path}: cannot be read ({shown(getattr(err, 'message', str(err)))})") \
            from None
    if held > limit:
        raise error(f"{path}: more than {limit:,} bytes; no file of its kind is that large "
                    "(see docs/security.md)")
    return b"".join(parts)


# ----------------------------------------------------------------------------- JSON


class _JSONRefusal(ValueError):
    """What parse_json's hooks refuse: NaN/Infinity, a key given twice."""


def _refuse_constant(name):
    raise _JSONRefusal(f"{name} is not a JSON number; write the text in quotes")


def unique_keys(pairs):
    """An object_pairs_hook refusing a key given twice (json keeps the last one silently)."""
    keys = [k for k, _ in pairs]
    if len(set(keys)) < len(keys):
        twice = sorted({k for k in keys if keys.count(k) > 1})
        raise _JSONRefusal(f"key(s) {shown(twice)} given more than once in one object")
    return dict(pairs)


def _bounded_int(text):
    value = int(text)
    if abs(value) >= MAX_FILE_INT:
        raise _JSONRefusal(f"integer {shown(value)} is out of range (|n| < 2**63)")
    return value


def parse_json(data, source, error=DataError, nonfinite=False, **hooks):
    """The value of the JSON text `data` (bytes, UTF-8 with or without a BOM, or str) read from
    `source`, every fault an `error` naming `source` (and line): not UTF-8, not JSON, nested
    too deeply, an integer of more digits than Python converts, a key given twice, a string
    holding half of a UTF-16 pair (`unencodable`), and NaN/Infinity unless `nonfinite`
    (t5core's own logs write a NaN loss). `hooks` go to
    json.loads (parse_int, parse_float)."""
    if isinstance(data, (bytes, bytearray)):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise error(f"{source}: not valid JSON: not UTF-8 (byte {data[err.start]:#04x} at "
                        f"offset {err.start})") from None
    if not nonfinite:
        hooks["parse_constant"] = _refuse_constant
    hooks.setdefault("parse_int", _bounded_int)
    try:
        value = json.loads(data, object_pairs_hook=unique_keys, **hooks)
    except json.JSONDecodeError as err:
        if err.lineno > 1:
            raise error(f"{source}, line {err.lineno} column {err.colno}: not valid JSON "
                        f"({err.msg})") from None
        raise error(f"{source}: not valid JSON ({err.msg} at column {err.colno})") from None
    except _JSONRefusal as err:
        raise error(f"{source}: {err}") from None
    except RecursionError:
        raise error(f"{source}: JSON nested too deeply to read (not valid JSON here)") from None
    except ValueError as err:  # an integer past sys.get_int_max_str_digits()
        raise error(f"{source}: not valid JSON ({shown(str(err))})") from None
    problem = _lone_surrogate(data, value)
    if problem:
        raise error(f"{source}: {problem}")
    return value


# A \uXXXX escape of half a UTF-16 pair (D800-DFFF), paired or not.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def unencodable(text: str) -> str | None:
    """What is wrong if `text` holds half of a UTF-16 pair (from a \\uXXXX escape without its
    other half, or a byte that was not UTF-8 in an argument or on stdin), else None: such a
    string is no character, and no tokenizer, tensor or output file can encode it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return (f"a lone surrogate \\u{ord(text[e.start]):04x} (half of a UTF-16 pair, or a "
                "byte that was not UTF-8) is not a character; write the character itself or "
                "both halves of its pair")
    return None


def _lone_surrogate(text: str, value) -> str | None:
    """`unencodable` of a JSON text or of the strings its escapes made."""
    return unencodable(text) or (unencodable(json.dumps(value, ensure_ascii=False))
                                 if _SURROGATE_ESCAPE.search(text) else None)


_LINE_ESCAPE = re.compile(r"\\(\\|n|r|u[0-9a-f]{4})")


def line_text(line: str) -> str:
    """The text `file_writes.one_line` wrote as `line` (a predictions file's, generate's)."""
    return _LINE_ESCAPE.sub(lambda m: {"\\": "\\", "n": "\n", "r": "\r"}.get(
        m.group(1)) or chr(int(m.group(1)[1:], 16)), line)


def read_json(path, error=DataError, nonfinite=False, **hooks):
    """`parse_json` of the file `path`, read with `read_bytes`."""
    return parse_json(read_bytes(path, error), path, error, nonfinite, **hooks)


# ----------------------------------------------------------------------------- names from files


def is_remote(path) -> bool:
    return "://" in os.fspath(path)


def _escapes_lexically(name):
    parts = name.replace("\\", "/").split("/")
    return (name.startswith(("/", "\\")) or os.path.isabs(name) or "://" in name
            or ".." in parts or (len(name) > 1 and name[1] == ":") or "\0" in name)


def _allowed_roots(directory):
    """The real directory, and for a Hugging Face cache snapshot
    (`<repo>/snapshots/<revision>/`, whose files link to `<repo>/blobs/`) its blobs directory."""
    real = os.path.realpath(directory)
    roots = [real]
    parent = os.path.dirname(real)
    if os.path.basename(parent) == "snapshots":
        roots.append(os.path.join(os.path.dirname(parent), "blobs"))
    return roots


def _inside_roots(path, directory):
    real = os.path.realpath(path)
    return any(os.path.commonpath([real, root]) == root for root in _allowed_roots(directory))


def resolve_inside(directory, name, source, error=CheckpointError, unsafe=UnsafeCheckpointError,
                   what="file", kind="the checkpoint directory"):
    """`directory/name` for a `name` read from the file `source`; `unsafe` unless it stays inside
    `directory` with links resolved, `error` unless a non-empty string (docs/architecture.md,
    Reads)."""
    directory = os.fspath(directory)
    if not isinstance(name, str) or not name:
        raise error(f"{source}: {shown(name)} is not a {what} name")
    if _escapes_lexically(name):
        raise unsafe(f"{source}: names the {what} {shown(name)}, which is outside {kind} "
                     f"{directory}; t5core reads only {what}s inside it")
    path = os.path.join(directory, name)
    if is_remote(directory):  # a remote file system has no links to resolve
        return path
    if not _inside_roots(path, directory):
        raise unsafe(f"{source}: {shown(name)} is a link to a {what} outside {kind} "
                     f"{directory}; t5core reads only {what}s inside it")
    return path


def file_inside(directory, name, source):
    """A checkpoint file `directory/name` an index `source` names: `resolve_inside`, not a dir."""
    path = resolve_inside(directory, name, source)
    if not is_remote(directory) and os.path.isdir(os.path.realpath(path)):
        raise CheckpointError(f"{source}: {shown(name)} is a directory, not a checkpoint file")
    return path


def user_file(directory, name):
    """`directory/name` for a fixed file name (model.safetensors, ...) in a directory the user
    named: no name came from a file, so a link there is the user's and is followed."""
    path = os.path.join(os.fspath(directory), name)
    if not is_remote(directory) and os.path.isdir(os.path.realpath(path)):
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    return path


def dir_inside(directory, name, source):
    """A directory `directory/name` named by `source` (a zarr array of a T5X checkpoint)."""
    return resolve_inside(directory, name, source, what="directory")


def checkpoint_state_paths(directory):
    """The prefixes the `checkpoint` state file in `directory` names, each refused unless inside
    `directory`; []: no state file. Call before `tf.train.CheckpointManager` looks there."""
    directory = os.fspath(directory)
    state_path = os.path.join(directory, "checkpoint")
    if not present(state_path):
        return []
    if not is_remote(directory):
        check_file(state_path, ModelDirError)  # TF would hang on a FIFO, read a device forever
    try:
        state = tf.train.get_checkpoint_state(directory)
    except Exception as err:  # a text proto that does not parse: ParseError, ValueError...
        raise ModelDirError(f"{state_path}: not a TensorFlow checkpoint state file "
                            f"({type(err).__name__}: {shown(str(err))})") from None
    if state is None:
        # TF logs "Checkpoint ignored" and starts afresh: a torn state file would hide a run.
        with open_file(state_path, ModelDirError) as f:
            if f.read(1 << 16).strip():
                raise ModelDirError(f"{state_path}: not a TensorFlow checkpoint state file (it "
                                    "does not parse); delete it to start afresh")
        return []
    named = [state.model_checkpoint_path, *state.all_model_checkpoint_paths]
    # TF joins a relative name to the directory it read the file from; absolute names stay.
    homes = {os.path.normpath(directory), os.path.abspath(directory)}
    if not is_remote(directory):
        homes.add(os.path.realpath(directory))
    resolved = []
    for prefix in dict.fromkeys(p for p in named if p):
        folder, name = os.path.split(os.path.normpath(prefix))
        if folder not in homes and (is_remote(folder) or os.path.realpath(folder) not in homes):
            raise ModelDirError(
                f"{state_path}: names the checkpoint {shown(prefix)}, which is outside "
                f"{directory}; t5core resumes only from checkpoints inside the model_dir "
                "(delete the state file, or the lines naming it, to start afresh)")
        resolve_inside(directory, name + ".index", state_path, error=ModelDirError,
                       unsafe=ModelDirError, what="checkpoint", kind="the model_dir")
        resolved.append(os.path.join(directory, name))
    return resolved


def latest_checkpoint(directory):
    """`tf.train.latest_checkpoint(directory)`, after `checkpoint_state_paths` checked it."""
    checkpoint_state_paths(directory)
    return tf.train.latest_checkpoint(directory)


# ----------------------------------------------------------------------------- HDF5


def h5_references_elsewhere(h5file):
    """What in an open h5py File reads outside it (external storage, virtual datasets, soft
    and external links): ["name: why", ...], [] when nothing does; the walk follows no link."""
    import h5py  # optional: only h5 checkpoints need it

    found = []

    def walk(group, prefix):
        for name in group:
            full = f"{prefix}{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                found.append(f"{full}: an external link to {shown(link.filename)}")
                continue
            if isinstance(link, h5py.SoftLink):
                found.append(f"{full}: a soft link to {shown(link.path)}")
                continue
            obj = group[name]
            if isinstance(obj, h5py.Group):
                walk(obj, full + "/")
            elif isinstance(obj, h5py.Dataset):
                if obj.is_virtual:
                    found.append(f"{full}: a virtual dataset (its data lives in other files)")
                elif obj.external:
                    found.append(f"{full}: external storage in {shown(obj.external[0][0])}")

    walk(h5file, "")
    return found


def check_h5_self_contained(path, found):
    """Refuses the HDF5 file `path` when `h5_references_elsewhere` found anything."""
    if found:
        raise UnsafeCheckpointError(
            f"{path}: refers to data outside the file ({'; '.join(found[:3])}"
            f"{f'; {len(found) - 3} more' if len(found) > 3 else ''}); t5core reads only HDF5 "
            "files that hold their own data")


# ----------------------------------------------------------------------------- TF checkpoint index

# A TF checkpoint's `.index` is a LevelDB table (SSTable) whose values are protobufs: a header,
# then one BundleEntryProto per tensor. TensorFlow trusts the shapes there and aborts the whole
# process (a C++ CHECK, not an exception) on a negative dimension, an element count past int64 or
# more than 254 dimensions, so t5core reads the table itself and checks every entry first.
_TABLE_MAGIC = 0xDB4775248B80FB57  # the last 8 bytes of the footer
_TABLE_FOOTER = 48  # two block handles (varints), padding to 40 bytes, the magic
_MAX_SHARDS = 1 << 20  # TF sizes its table of shard files by the header's count


class _BadIndex(Exception):
    """A fault in a TF checkpoint index; check_tf_index re-raises it naming the file."""


def _varint(data, at):
    """(value, next offset) of the LevelDB/protobuf varint at `at`."""
    value = shift = 0
    while shift < 64 and at < len(data):
        byte = data[at]
        value, shift, at = value | (byte & 0x7F) << shift, shift + 7, at + 1
        if not byte & 0x80:
            return value, at
    raise _BadIndex("a number runs past its block")


def _table_block(data, handle):
    """The contents of the block a handle (varint offset, varint size) points at."""
    offset, at = _varint(handle, 0)
    size, _ = _varint(handle, at)
    if offset + size + 5 > len(data):  # 5: the trailer, a compression byte and a checksum
        raise _BadIndex(f"a block of {size} bytes at {offset} runs past the end of the file")
    method, block = data[offset + size], data[offset:offset + size]
    if method not in (0, 1):  # TensorFlow writes blocks plain (0) or, older ones, Snappy (1)
        raise _BadIndex(f"a block compressed by method {method}, which TensorFlow does not write")
    return _unsnappy(block) if method else block


def _unsnappy(data):
    """The bytes of a Snappy-compressed block (Mesh-TF's indexes are): its length, then
    literals and copies of bytes already out. TensorFlow's Python side ships no Snappy."""
    size, at = _varint(data, 0)
    out = bytearray()
    while at < len(data):
        tag, at = data[at], at + 1
        kind, high = tag & 3, tag >> 2
        if kind == 0:  # a literal: its length - 1 in the tag, or in the 1-4 bytes after it
            if high >= 60:
                high, at = int.from_bytes(data[at:at + high - 59], "little"), at + high - 59
            piece, at = data[at:at + high + 1], at + high + 1
        else:  # a copy: 4-11 bytes from up to 2047 back, or 1-64 from a 2- or 4-byte distance
            extra = (1, 2, 4)[kind - 1]
            length, back = ((high & 7) + 4, high >> 3 << 8) if kind == 1 else (high + 1, 0)
            back, at = back | int.from_bytes(data[at:at + extra], "little"), at + extra
            if not 0 < back <= len(out):
                raise _BadIndex("a compressed block copies from before its start")
            start = len(out) - back
            piece = (out[start:start + length] * (length // back + 1))[:length]
        if at > len(data) or len(out) + len(piece) > size:
            raise _BadIndex("a compressed block that does not decompress to its length")
        out += piece
    if len(out) != size:
        raise _BadIndex("a compressed block that does not decompress to its length")
    return bytes(out)


def _block_entries(block):
    """The (key, value) pairs of a table block: entries (each key a prefix shared with the one
    before, then its own bytes), then the restart offsets a lookup starts from, then their count.
    Every restart offset must start an entry read here: a lookup then meets only checked ones."""
    count = int.from_bytes(block[-4:], "little") if len(block) >= 4 else -1
    end = len(block) - 4 * (count + 1)
    if count < 0 or end < 0:
        raise _BadIndex("a block's restart offsets do not fit in it")
    restarts = {int.from_bytes(block[end + 4 * i:end + 4 * i + 4], "little")
                for i in range(count)}
    key, at, found = b"", 0, []
    while at < end:
        restarts.discard(at)
        shared, at = _varint(block, at)
        own, at = _varint(block, at)
        length, at = _varint(block, at)
        if shared > len(key) or at + own + length > end:
            raise _BadIndex("an entry runs past its block")
        key = key[:shared] + block[at:at + own]
        found.append((key, block[at + own:at + own + length]))
        at += own + length
    if restarts:
        raise _BadIndex("a block's restart offset is not where an entry starts")
    return found


def _bundle_entry_problem(entry, num_shards):
    """Why TF could not take the index entry `entry` safely, or None."""
    try:  # enums above 100 are reference types, never stored
        dtype = tf.as_dtype(entry.dtype) if entry.dtype < 100 else None
    except TypeError:
        dtype = None
    if dtype is None:
        return f"dtype {entry.dtype} is not a TensorFlow dtype"
    dims = [d.size for d in entry.shape.dim]
    problem = "shape of unknown rank" if entry.shape.unknown_rank else shape_problem(dims)
    if problem:
        return problem
    if element_count(dims) * max(dtype.size, 1) >= 1 << 63:  # strings: >= 1 byte each
        return f"shape {dims} of {dtype.name} is more bytes than int64 counts"
    if not 0 <= entry.shard_id < num_shards:
        return f"data shard {entry.shard_id}, but the header declares {num_shards}"
    extents = [e for s in entry.slices for e in s.extent]
    if any(e.start < 0 or e.length < 0 for e in extents) or any(
            len(s.extent) > len(dims) for s in entry.slices):
        return "a slice outside the tensor"
    return None


def check_tf_index(prefix, error=CheckpointError):
    """Refuses (`error`, naming the file and tensor) the TF checkpoint `prefix` unless each entry
    of its `.index` has a TF dtype, at most MAX_DIMS sizes >= 0 whose bytes int64 counts, and
    a data shard the header declares. Call before any TensorFlow reader sees the checkpoint."""
    path = prefix + ".index"
    data = read_bytes(path, error)
    try:
        if len(data) < _TABLE_FOOTER or int.from_bytes(data[-8:], "little") != _TABLE_MAGIC:
            raise _BadIndex("no LevelDB table footer")
        footer = data[-_TABLE_FOOTER:]
        _, at = _varint(footer, _varint(footer, 0)[1])  # past the metaindex handle (unused)
        entries = [pair for _, handle in _block_entries(_table_block(data, footer[at:]))
                   for pair in _block_entries(_table_block(data, handle))]
        if not entries or entries[0][0] != b"":
            raise _BadIndex("no header entry")
        num_shards = compat.bundle_header(entries[0][1]).num_shards
        if not 0 < num_shards <= _MAX_SHARDS:
            raise _BadIndex(f"the header declares {num_shards} data shards")
        for key, value in entries[1:]:
            problem = _bundle_entry_problem(compat.bundle_entry(value), num_shards)
            if problem:
                raise _BadIndex(f"tensor {shown(key.decode('utf-8', 'replace'))}: {problem}")
    except _BadIndex as err:
        raise error(f"{path}: not a checkpoint index TensorFlow can read safely ({err})") from None
    except Exception as err:  # protobuf's DecodeError on a damaged entry
        raise error(f"{path}: a damaged checkpoint index ({type(err).__name__}: "
                    f"{shown(str(err))})") from None


# ----------------------------------------------------------------------------- sizes


def model_parameters_at_least(config, run=None):
    """A lower bound on the parameters of the model `config` (and `run`, a RunDescription)
    describe, from the sizes alone: what building it would allocate, at the least."""
    d_model, inner = config.d_model, config.num_heads * config.d_kv
    ffn = (3 if config.is_gated else 2) * d_model * config.d_ff
    total = config.vocab_size * d_model
    total += config.num_layers * (4 * d_model * inner + ffn)
    total += config.num_decoder_layers * (8 * d_model * inner + ffn)
    if run is not None:
        total += run.prompt_length * d_model
        if run.model_class == "T5EncoderClassifier":
            total += len(run.labels) * d_model
        total += run.lora_rank * (d_model + inner)  # at least one adapted projection
    return total


def check_model_budget(config, run=None, source="config"):
    """Refuses a model that would exceed BUDGETS["model_parameters"] before it is built."""
    wanted = model_parameters_at_least(config, run)
    if wanted > BUDGETS["model_parameters"]:
        raise CheckpointError(
            f"{source}: describes a model of at least {wanted:.3g} parameters, over t5core's "
            f"budget of {BUDGETS['model_parameters']:.3g} (see docs/security.md); its sizes "
            "are wrong")


def check_model_fits_checkpoint(config, run, shapes, source):
    """Refuses, before it is built, a model larger than the tensors of the checkpoint it is
    loaded from (a config.json or run.json asking for more is wrong)."""
    check_model_budget(config, run, source)
    stored = sum(element_count(shape) for shape in shapes.values())
    wanted = model_parameters_at_least(config, run)
    if wanted > stored + BUDGETS["parameters_beyond_checkpoint"]:
        fields = "config" if run is None else "config and run description"
        raise CheckpointError(
            f"{source}: its {fields} describe a model of at least {wanted:,} parameters, but "
            f"the checkpoint holds {stored:,} values in all; a size there (d_model, vocab_size, "
            "lora_rank, prompt_length, labels...) is wrong")


# ----------------------------------------------------------------------------- data files


def _chunks(path):
    """The bytes of a (possibly gzipped, possibly multi-member) file, a block at a time: gzip
    decompresses at most a block per read, so a bomb never expands past what a line allows."""
    with open_file(path) as f:
        stream = gzip.GzipFile(fileobj=f, mode="rb") if path.endswith(".gz") else f
        while block := stream.read(1 << 20):
            yield block


# What a line held as text costs beyond its bytes (a str's header, the list's pointer), charged
# to the file's budget: a file of empty lines costs that much memory per line, not nothing.
LINE_COST = 64


def bounded_lines(path):
    """The lines (bytes, without b"\\n") of a possibly gzipped data file, each refused past
    BUDGETS["line_bytes"] and the whole past BUDGETS["data_file_bytes"] (after decompression,
    LINE_COST more per line), with a DataError naming the file and line, before the line is
    held whole."""
    line_limit, file_limit = BUDGETS["line_bytes"], BUDGETS["data_file_bytes"]
    pending, number, total = bytearray(), 1, 0
    try:
        for block in _chunks(path):
            total += len(block) + LINE_COST * block.count(b"\n")
            if total > file_limit:
                raise DataError(f"{path}: more than {file_limit:,} bytes held as lines "
                                f"(decompressed, {LINE_COST} more per line); t5core reads such "
                                "data files whole: split it, or use plain text")
            start = 0
            while (end := block.find(b"\n", start)) >= 0:
                if len(pending) + end - start > line_limit:
                    raise _long_line(path, number, line_limit)
                pending += block[start:end]
                yield bytes(pending)
                pending.clear()
                number += 1
                start = end + 1
            pending += block[start:]
            if len(pending) > line_limit:
                raise _long_line(path, number, line_limit)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: not a valid gzip file: {e}") from None
    if pending:
        yield bytes(pending)


def _long_line(path, number, limit):
    return DataError(f"{path}:{number}: line longer than {limit:,} bytes (decompressed); no "
                     "example is that long: is the file what you think it is?")
