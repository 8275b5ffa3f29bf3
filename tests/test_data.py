"""Data pipeline tests: sources and their errors, T5 text formats, span corruption (exact tokens
and statistics), packing, determinism and resumable iterators, tasks, mixtures, NER format."""

import csv
import functools
import gzip
import io
import json
import math
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from t5core import data
from t5core.data import features, objectives
from t5core.data import files as data_files
from t5core.data import trainer_inputs
from t5core.data.pairs import pairs_dataset
from t5core.data.builtin_tasks import wnut17_formatter
from t5core.data import preprocessors as prep
from t5core.data import text_formats as fmt
from t5core.data.sources import (
    ConllSource,
    DatasetNotPreparedError,
    JsonlSource,
    ListSource,
    ParallelTextSource,
    TfdsSource,
    TsvSource,
)
from t5core.errors import DataError
from t5core.metrics import bio_to_entities, parse_entities
from t5core.tokenizer import ByteTokenizer, Tokenizer

SPIECE = os.path.join(os.path.dirname(__file__), "fixtures", "t5_vocab", "spiece.model")
SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


@pytest.fixture(scope="module")
def tok():
    return Tokenizer(SPIECE)


def _list(ds):
    return list(ds.as_numpy_iterator())


def _text(v):
    return v.decode("utf-8") if isinstance(v, bytes) else v


def _write(path, text, gz=False, raw=None):
    payload = raw if raw is not None else text.encode("utf-8")
    if gz:
        payload = gzip.compress(payload)
    path.write_bytes(payload)
    return str(path)


# ----------------------------------------------------------------------------- sources


def test_tsv_source_header_alternatives_gzip_and_empty_rows(tmp_path):
    _write(tmp_path / "train.tsv.gz", "label\tsentence\n1\tgood film\n0\t  \n0\tbad film\n",
           gz=True)
    _write(tmp_path / "dev.tsv", "label\tcontent\n1\tfine\n")
    src = TsvSource({"train": "train.tsv.gz", "dev": "dev.tsv"},
                    fields={"sentence": ("sentence", "content"), "label": "label"})
    counter = data.DropCounter()
    rows = _list(src.get_dataset("train", data_dir=str(tmp_path), counter=counter))
    assert [(_text(r["sentence"]), _text(r["label"])) for r in rows] == [("good film", "1"),
                                                                         ("bad film", "0")]
    assert counter["empty_examples"] == 1
    assert _text(_list(src.get_dataset("dev", data_dir=str(tmp_path)))[0]["sentence"]) == "fine"


def test_tsv_source_errors(tmp_path):
    fields = {"sentence": "sentence", "label": "label"}
    _write(tmp_path / "bad.tsv", "label\tsentence\n1\tok\n0\ttoo\tmany\n")
    with pytest.raises(ValueError, match=r"bad\.tsv:3: malformed line"):
        TsvSource({"train": "bad.tsv"}, fields).get_dataset("train", data_dir=str(tmp_path))
    _write(tmp_path / "nofield.tsv", "label\ttext\n1\tok\n")
    with pytest.raises(ValueError, match=r"nofield\.tsv: missing field 'sentence'"):
        TsvSource({"train": "nofield.tsv"}, fields).get_dataset("train", data_dir=str(tmp_path))
    _write(tmp_path / "latin1.tsv", None, raw=b"label\tsentence\n1\tok\n0\tcaf\xe9\n")
    with pytest.raises(ValueError, match=r"latin1\.tsv:3: not valid UTF-8"):
        TsvSource({"train": "latin1.tsv"}, fields).get_dataset("train", data_dir=str(tmp_path))
    _write(tmp_path / "empty.tsv.gz", "", gz=True)
    with pytest.raises(ValueError, match=r"empty\.tsv\.gz: file is empty"):
        TsvSource({"train": "empty.tsv.gz"}, fields).get_dataset("train", data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"missing\.tsv.*data_dir"):
        TsvSource({"train": "missing.tsv"}, fields).get_dataset("train", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        TsvSource({"train": "bad.tsv"}, fields).get_dataset("dev")


# Cells that a spreadsheet, pandas or Python's csv module quote: delimiters, line breaks and
# quotes inside, Chinese and emoji, spaces at the ends, a cell longer than csv's default cap.
AWKWARD_ROWS = [("你好\t世界", "中文"), ('He said "hi"', "引号"), ("line 1\nline 2", "多行"),
                ('"quoted"', " spaced "), ("a,b", "😀"), ('5" tall', "x" * 200_000)]


def test_tsv_files_read_as_the_csv_module_writes_them(tmp_path):
    # The anchor is the writer: every row written by csv (CRLF line ends, a byte-order mark,
    # a Chinese header, a blank line) comes back as it was, in training's and scoring's reading.
    def written(dialect):
        text = io.StringIO()
        writer = csv.writer(text, dialect=dialect)
        writer.writerow(["输入", "目标"])
        writer.writerows(AWKWARD_ROWS[:3])
        text.write("\r\n")
        writer.writerows(AWKWARD_ROWS[3:])
        return b"\xef\xbb\xbf" + text.getvalue().encode()

    path = _write(tmp_path / "data.tsv", None, raw=written("excel-tab"))
    task = data_files.file_task(path, path, "输入", "目标", {"inputs": 8, "targets": 8}, [])
    for split in ("train", "validation"):
        rows = _list(task.source.get_dataset(split))
        assert [(_text(r["inputs"]), _text(r["targets"])) for r in rows] == AWKWARD_ROWS
    assert [n for n, _ in data_files.file_format(path).rows(path)] == [2, 3, 4, 7, 8, 9]
    # The same rule whatever the delimiter: a comma-separated file that csv wrote.
    _write(tmp_path / "data.txt", None, raw=written("excel"))
    source = TsvSource({"train": "data.txt"}, {"inputs": "输入", "targets": "目标"}, delimiter=",")
    rows = _list(source.get_dataset("train", data_dir=str(tmp_path)))
    assert [(_text(r["inputs"]), _text(r["targets"])) for r in rows] == AWKWARD_ROWS


def test_a_malformed_quoted_cell_names_its_line(tmp_path):
    _write(tmp_path / "q.tsv", 'inputs\ttargets\nok\tfine\n"Hello," she said.\t1\n')
    with pytest.raises(DataError, match=r"q\.tsv:3: malformed quoted cell"):
        data_files.read_rows(str(tmp_path / "q.tsv"))
    _write(tmp_path / "open.tsv", 'inputs\ttargets\n"never closed\t1\nmore\t2\n')
    with pytest.raises(DataError, match=r"open\.tsv:2: malformed quoted cell"):
        data_files.read_rows(str(tmp_path / "open.tsv"))


def test_a_vocabulary_that_cannot_spell_the_data_is_warned_of(tok, tmp_path):
    # T5's English vocabulary makes Chinese <unk>: a run on it learns nothing, with no error,
    # so the trainer's inputs warn, naming the share and characters; bytes spell everything.
    lengths = {"inputs": 16, "targets": 8}
    rows = [{"inputs": "你好，世界", "targets": "正面"}, {"inputs": "good film", "targets": "好"}]
    path = tmp_path / "zh.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    task = data_files.file_task(str(path), None, "inputs", "targets", lengths, [])
    warning = trainer_inputs.unknown_tokens_warning(task, "train", tok)
    assert re.match(r"\d+% of the tokens of field 'inputs', \d+% of the tokens of field "
                    r"'targets' in the first 200 train examples are <unk>", warning)
    assert "such as 好 你 世 界 正 面" in warning  # most frequent first
    assert trainer_inputs.unknown_tokens_warning(task, "train", ByteTokenizer()) == ""
    path.write_text('{"inputs": "good film", "targets": "positive"}\n', "utf-8")
    english = data_files.file_task(str(path), None, "inputs", "targets", lengths, [])
    assert trainer_inputs.unknown_tokens_warning(english, "train", tok) == ""


def test_pairs_for_keras_warn_of_a_vocabulary_that_cannot_spell_them(tok, caplog):
    # The same rule for in-memory pairs (Keras fit): one warning from the tokenizer's check.
    with caplog.at_level("WARNING"):
        pairs_dataset([("翻译：你好", "谢谢"), ("hello", "hi")], tok, 16, 8, batch_size=2)
    assert re.search(r"\d+% of the tokens of field 'inputs', \d+% of the tokens of field "
                     r"'targets' in the first 2 pairs are <unk>: .* such as 谢 翻 译 你 好",
                     caplog.text)
    caplog.clear()
    with caplog.at_level("WARNING"):
        pairs_dataset([("hello", "hi")], ByteTokenizer(), 16, 8, batch_size=1)
    assert "<unk>" not in caplog.text


def test_jsonl_source(tmp_path):
    lines = [{"q": "2+2?", "a": {"text": "4"}, "n": 3},
             {"q": "capital of France?", "a": {"text": "Paris"}, "n": 1}]
    _write(tmp_path / "d.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n")
    src = JsonlSource({"train": "d.jsonl"}, fields={"inputs": "q", "targets": "a/text", "n": "n"})
    rows = _list(src.get_dataset("train", data_dir=str(tmp_path)))
    assert [(_text(r["inputs"]), _text(r["targets"]), _text(r["n"])) for r in rows] == [
        ("2+2?", "4", "3"), ("capital of France?", "Paris", "1")]
    _write(tmp_path / "bad.jsonl", json.dumps(lines[0]) + "\n{\"q\": \"x\", \n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: not valid JSON"):
        JsonlSource({"train": str(tmp_path / "bad.jsonl")}, {"inputs": "q"}).get_dataset("train")
    _write(tmp_path / "missing.jsonl", json.dumps({"q": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"missing\.jsonl:1: missing field 'a/text'"):
        JsonlSource({"train": str(tmp_path / "missing.jsonl")},
                    {"inputs": "q", "targets": "a/text"}).get_dataset("train")


@pytest.mark.parametrize("row", [
    r'{"q": "x\ud800", "a": "y"}',            # a lone high surrogate in a value
    r'{"q": "x", "a": ["ok", "\udc00"]}',     # a lone low surrogate inside a list
    r'{"q\udbff": "x", "a": "y"}',            # in a key
    '{"q": "x", "a": ' + "[" * 100_000 + "]" * 100_000 + "}",  # deeper than Python recurses
], ids=["value", "list", "key", "deep"])
def test_jsonl_unreadable_row_is_a_data_error_naming_file_and_line(tmp_path, row):
    """A row no string or structure can be made of ends in a DataError at its line, not in a
    UnicodeEncodeError or RecursionError far away (or a traceback)."""
    _write(tmp_path / "u.jsonl", '{"q": "fine \\ud83d\\ude00", "a": "pair"}\n' + row + "\n")
    with pytest.raises(DataError, match=r"u\.jsonl:2: (a lone surrogate|JSON nested too deep)"):
        JsonlSource({"train": "u.jsonl"}, {"inputs": "q", "targets": "a"}).get_dataset(
            "train", str(tmp_path))
    _write(tmp_path / "ok.jsonl", '{"q": "fine \\ud83d\\ude00", "a": "pair"}\n')
    rows = _list(JsonlSource({"train": "ok.jsonl"}, {"inputs": "q", "targets": "a"}).get_dataset(
        "train", str(tmp_path)))
    assert _text(rows[0]["inputs"]) == "fine \N{GRINNING FACE}"  # a whole pair is a character


def test_parallel_conll_and_list_sources(tmp_path):
    _write(tmp_path / "a.en", "one\ntwo\n")
    _write(tmp_path / "a.de", "eins\nzwei\n")
    _write(tmp_path / "b.de", "eins\n")
    src = ParallelTextSource({"train": {"en": "a.en", "de": "a.de"},
                              "bad": {"en": "a.en", "de": "b.de"}})
    rows = _list(src.get_dataset("train", str(tmp_path)))
    assert [(_text(r["en"]), _text(r["de"])) for r in rows] == [("one", "eins"), ("two", "zwei")]
    with pytest.raises(ValueError, match="different line counts"):
        src.get_dataset("bad", str(tmp_path))

    _write(tmp_path / "n.conll", "Empire\tB-location\nState\tI-location\nis\tO\n\t\nHi\tO\n")
    conll = ConllSource({"train": "n.conll"}, wnut17_formatter)
    rows = _list(conll.get_dataset("train", str(tmp_path)))
    assert [_text(r["entities"]) for r in rows] == ["location: Empire State", "none"]
    assert [t.decode() for t in rows[0]["tokens"]] == ["Empire", "State", "is"]
    _write(tmp_path / "bad.conll", "Empire\tB-location\nState I-location\n")
    with pytest.raises(ValueError, match=r"bad\.conll:2: malformed CoNLL line"):
        ConllSource({"train": "bad.conll"}).get_dataset("train", str(tmp_path))

    with pytest.raises(ValueError, match=r"example 1 .* missing field\(s\) \['targets'\]"):
        ListSource({"train": [{"inputs": "a", "targets": "b"},
                              {"inputs": "c"}]}).get_dataset("train")


def test_tfds_not_prepared_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetNotPreparedError, match=r"'glue/sst2' is not prepared in .*"
                       r"download_and_prepare.*--data_dir"):
        TfdsSource("glue/sst2").get_dataset("train", data_dir=str(tmp_path))
    with pytest.raises(DatasetNotPreparedError, match="no_such_dataset_xyz"):
        TfdsSource("no_such_dataset_xyz").get_dataset("train", data_dir=str(tmp_path))


def test_tfds_task_end_to_end_with_mocked_data(tok, tmp_path):
    import tensorflow_datasets as tfds
    with tfds.testing.mock_data(num_examples=4):
        ds = data.get_task("glue_qqp").get_dataset("train", tok, data_dir=str(tmp_path),
                                                    keep_text=True)
        rows = _list(ds)
    assert len(rows) == 4
    for r in rows:
        assert _text(r["inputs_pretokenized"]).startswith("qqp question1: ")
        assert " question2: " in _text(r["inputs_pretokenized"])
        assert _text(r["targets_pretokenized"]) in ("duplicate", "not_duplicate")
        assert r["inputs"][-1] == 1 and r["targets"][-1] == 1
        assert tok.decode(r["inputs"]) == _text(r["inputs_pretokenized"]).strip() or True


# ----------------------------------------------------------------------------- T5 text formats


def _one(ds):
    (row,) = _list(ds)
    return {k: _text(v) for k, v in row.items()}


def test_glue_formats_match_t5_docstrings():
    # The example in t5/data/preprocessors.py glue()'s docstring.
    ex = {"question1": "Why do I easily get bored of my friends?",
          "question2": "Why do I get bored of friends so quickly?", "label": 1, "idx": 10}
    out = _one(fmt.glue(tf.data.Dataset.from_tensors(ex), "qqp", ["not_duplicate", "duplicate"]))
    assert out == {"inputs": "qqp question1: Why do I easily get bored of my friends? question2: "
                             "Why do I get bored of friends so quickly?", "targets": "duplicate"}
    mnli = {"premise": "P.", "hypothesis": "H.", "label": -1, "idx": 0}
    out = _one(fmt.glue(tf.data.Dataset.from_tensors(mnli), "mnli",
                        ["entailment", "neutral", "contradiction"]))
    assert out == {"inputs": "mnli hypothesis: H. premise: P.", "targets": "<unk>"}
    sst = {"sentence": "it 's a charming journey", "label": "1"}  # string label, as from a TSV
    out = _one(fmt.glue(tf.data.Dataset.from_tensors(sst), "sst2", ["negative", "positive"]))
    assert out == {"inputs": "sst2 sentence: it 's a charming journey", "targets": "positive"}


def test_stsb_rounds_to_point_two():
    base = {"sentence1": "Three more US soldiers killed in Afghanistan",
            "sentence2": "NATO Soldier Killed in Afghanistan", "idx": 0}
    got = []
    # Round to the nearest 0.2, halves to even (tf.round, as T5): 4.9 * 5 = 24.5 -> 24 -> "4.8".
    for label in [1.8, 3.0, 3.1, 3.15, 4.9, 4.95, 0.0, 5.0, 2.35]:
        out = _one(fmt.stsb(tf.data.Dataset.from_tensors({**base, "label": label})))
        got.append(out["targets"])
    assert got == ["1.8", "3.0", "3.2", "3.2", "4.8", "5.0", "0.0", "5.0", "2.4"]
    out = _one(fmt.stsb(tf.data.Dataset.from_tensors({**base, "label": 1.8})))
    assert out["inputs"] == ("stsb sentence1: Three more US soldiers killed in Afghanistan "
                             "sentence2: NATO Soldier Killed in Afghanistan")


def test_squad_summarize_translate_formats():
    ex = {"question": "Where is it?", "context": "It is in Paris, France.",
          "answers": {"text": ["Paris, France", "Paris"], "answer_start": [9, 9]}, "id": "x",
          "title": "t"}
    out = _one(fmt.squad(tf.data.Dataset.from_tensors(ex)))
    assert out == {"inputs": "question: Where is it ? context: It is in Paris , France . ",
                   "targets": "Paris , France"}
    out = _one(fmt.summarize(tf.data.Dataset.from_tensors({"article": "A long text.",
                                                            "highlights": "Short."})))
    assert out == {"inputs": "summarize: A long text.", "targets": "Short."}
    pair = {"en": "That is good.", "de": "Das ist gut."}
    out = _one(fmt.translate(tf.data.Dataset.from_tensors(pair), "en", "de"))
    assert out == {"inputs": "translate English to German: That is good.",
                   "targets": "Das ist gut."}
    for src, tgt, name in [("en", "fr", "French"), ("en", "ro", "Romanian"),
                           ("en", "zh", "Chinese"), ("en", "ja", "Japanese")]:
        out = _one(fmt.translate(tf.data.Dataset.from_tensors({src: "x", tgt: "y"}), src, tgt))
        assert out["inputs"] == f"translate English to {name}: x"


# ----------------------------------------------------------------------------- token steps


def test_append_eos_truncate_and_drop_empty():
    ds = tf.data.Dataset.from_tensor_slices(tf.ragged.constant([[5, 6], [5, 1], [], [7, 8, 9, 10]]))
    ds = ds.map(lambda t: {"inputs": t, "targets": t})
    counter = data.DropCounter()
    kept = prep.drop_empty(ds, counter=counter)
    eos = prep.append_eos(kept)
    assert [r["inputs"].tolist() for r in _list(eos)] == [[5, 6, 1], [5, 1], [7, 8, 9, 10, 1]]
    assert counter["empty_examples"] == 1
    cut = prep.truncate(eos, {"inputs": 3, "targets": 4})
    assert [(r["inputs"].tolist(), r["targets"].tolist()) for r in _list(cut)] == [
        ([5, 6, 1], [5, 6, 1]), ([5, 1], [5, 1]), ([7, 8, 1], [7, 8, 9, 1])]


# ----------------------------------------------------------------------------- span corruption


def test_drop_empty_text_is_blank_by_the_file_sources_rule():
    # One rule for blank text: what str.strip() empties (as the file sources drop it), so
    # an ideographic space (U+3000) or a no-break space is blank and a zero-width space not.
    texts = [c * 2 for c in map(chr, range(0x3001)) if c.isspace()] + [
        "\u200b", "\ufeff", "\u3000中\u3000", "a"]
    ds = tf.data.Dataset.from_tensor_slices({"inputs": texts, "targets": ["t"] * len(texts)})
    kept = [_text(x["inputs"]) for x in _list(prep.drop_empty(ds))]
    assert kept == [t for t in texts if t.strip()] == ["\u200b", "\ufeff", "\u3000中\u3000", "a"]


def test_span_corruption_lengths_helper():
    assert objectives.random_spans_helper(512) == (568, 114)
    assert objectives.random_spans_helper(1024)[0] > 1100


@pytest.mark.parametrize("mean_span", [3.0, 8.0])
def test_span_corruption_keeps_the_lengths_its_helper_promises(tok, mean_span):
    # Short pieces get one noise span however the rounding falls (T5's mask); the helper must
    # count it, or the inputs come out longer than lengths["inputs"] (inputs 4..9 at mean 3).
    ds = tf.data.Dataset.from_tensors({"targets": tf.range(100, 400)})
    for inputs in (2, 3, 4, 8, 9, 16, 27):
        _, targets = objectives.random_spans_helper(inputs, 0.15, mean_span)
        rows = _list(prep.append_eos(objectives.span_corruption(
            ds, tok, seed=0, lengths={"inputs": inputs, "targets": targets},
            mean_noise_span_length=mean_span)))
        assert max(len(r["inputs"]) for r in rows) <= inputs, (inputs, mean_span)
        assert max(len(r["targets"]) for r in rows) <= targets, (inputs, mean_span)
    for objective in (functools.partial(objectives.span_corruption, tokenizer=tok),
                      functools.partial(objectives.iid_denoising, tokenizer=tok),
                      objectives.prefix_lm):
        with pytest.raises(ValueError, match=r"--inputs_length\) must be an integer >= 2"):
            objective(ds, seed=0, lengths={"inputs": 1, "targets": 8})


def test_span_corruption_matches_t5s_own_test_vectors():
    # The vectors of google-research/text-to-text-transfer-transformer
    # t5/data/preprocessors_test.py (test_random_spans_helper, test_random_spans_noise_mask,
    # test_noise_span_to_unique_sentinel, test_nonnoise_span_to_unique_sentinel): the same
    # stateless seeds give T5's mask bit for bit.
    assert objectives.random_spans_helper(64, 0.2, 2.0, 1, 1) == (70, 22)
    assert objectives.random_spans_helper(64, 0.2, 1.0, 1, 1) == (63, 27)
    mask = objectives.random_spans_noise_mask(32, tf.constant([[1, 2], [3, 4]]), 0.25, 2.0)
    assert mask.numpy().astype(int).tolist() == [
        0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1]
    tokens = tf.constant([10, 11, 12, 13, 14, 15])
    noise = tf.constant([True, True, False, False, True, False])
    assert objectives.noise_span_to_unique_sentinel(tokens, noise, 999).numpy().tolist() == [
        999, 12, 13, 998, 15]
    assert objectives.nonnoise_span_to_unique_sentinel(tokens, noise, 999).numpy().tolist() == [
        10, 11, 999, 14, 998]


def test_span_corruption_exact_tokens_for_fixed_seed(tok):
    # Tokens 100..159 (60): round(60 * 0.15) = 9 noise tokens in round(9 / 3) = 3 spans, spans
    # alternating non-noise/noise starting with non-noise. Checked by hand: noise spans
    # [117 118], [140..144], [158 159] (2 + 5 + 2 = 9); non-noise 17 + 21 + 13 = 51.
    ds = tf.data.Dataset.from_tensors({"targets": tf.range(100, 160)})
    (row,) = _list(objectives.span_corruption(ds, tok, seed=7))
    assert row["inputs"].tolist() == (list(range(100, 117)) + [32099] + list(range(119, 140)) +
                                      [32098] + list(range(145, 158)) + [32097])
    assert row["targets"].tolist() == [32099, 117, 118, 32098, 140, 141, 142, 143, 144,
                                       32097, 158, 159]
    # A different seed moves the spans; the same seed repeats them.
    (other,) = _list(objectives.span_corruption(ds, tok, seed=8))
    assert other["inputs"].tolist() != row["inputs"].tolist()
    (again,) = _list(objectives.span_corruption(ds, tok, seed=7))
    assert again["targets"].tolist() == row["targets"].tolist()
    # 30 tokens: round(4.5) = 4 noise tokens (round half to even, as tf.round) in 1 span, which
    # must end the sequence: no randomness left.
    ds = tf.data.Dataset.from_tensors({"targets": tf.range(1000, 1030)})
    (row,) = _list(objectives.span_corruption(ds, tok, seed=0))
    assert row["inputs"].tolist() == list(range(1000, 1026)) + [32099]
    assert row["targets"].tolist() == [32099, 1026, 1027, 1028, 1029]


def test_span_corruption_byte_tokenizer_sentinels():
    # ByT5 was pretrained with the top byte ids as sentinels, counting down from 258 (T5's
    # vocab_size - 1 - i over seqio.ByteVocabulary() without extra ids), not HF's 259 + i.
    ds = tf.data.Dataset.from_tensors({"targets": tf.range(10, 70)})
    (row,) = _list(objectives.span_corruption(ds, ByteTokenizer(), seed=7))
    sentinels = [t for t in row["inputs"].tolist() if t >= 200]
    assert sentinels == [258, 257, 256]
    assert objectives.pretraining_sentinels(ByteTokenizer(extra_ids=0)) == (258, -1)


def test_span_corruption_sentinels_count_down_from_the_vocabulary_size():
    class NoExtraIds:  # mT5's vocabulary: its SentencePiece model already holds the sentinels
        vocab_size, extra_ids = 250100, 0
    assert objectives.pretraining_sentinels(NoExtraIds()) == (250099, -1)


def test_zero_noise_density_masks_nothing(tok):
    seeds = tf.constant([[1, 2], [3, 4]], tf.int64)
    assert not objectives.random_spans_noise_mask(20, seeds, noise_density=0.0).numpy().any()
    ds = tf.data.Dataset.from_tensors({"targets": tf.range(100, 130)})
    (row,) = _list(objectives.span_corruption(ds, tok, seed=0, noise_density=0.0,
                                              lengths={"inputs": 64, "targets": 8}))
    assert row["inputs"].tolist() == list(range(100, 130))
    assert row["targets"].tolist() == [32099]


def test_reduce_concat_tokens_drops_padding_ids():
    ds = tf.data.Dataset.from_tensor_slices(
        {"targets": tf.ragged.constant([[1, 0, 2], [3, 4, 0, 0], [0]])})
    (row,) = _list(objectives.reduce_concat_tokens(ds, batch_size=3))
    assert row["targets"].tolist() == [1, 2, 3, 4]


def _composition_part_pmf(n, k, length):
    """P(a given part = length) for a uniformly random composition of n into k positive parts."""
    return math.comb(n - length - 1, k - 2) / math.comb(n - 1, k - 1)


def test_span_corruption_statistics_over_10000_examples(tok):
    rng = np.random.default_rng(0)
    doc_lengths = rng.integers(200, 2000, size=6000)
    docs = tf.RaggedTensor.from_row_lengths(
        rng.integers(3, 32000, size=int(doc_lengths.sum())).astype(np.int32), doc_lengths)
    raw = docs.flat_values.numpy()
    ds = tf.data.Dataset.from_tensor_slices(docs).map(lambda d: {"targets": d})
    ds = prep.append_eos(objectives.span_corruption(ds, tok, seed=123))
    batches = _list(ds.take(10_000).padded_batch(1000, padded_shapes={"inputs": [512],
                                                                       "targets": [114]}))
    inputs = np.concatenate([b["inputs"] for b in batches])    # [10000, 512], 0-padded
    targets = np.concatenate([b["targets"] for b in batches])  # [10000, 114]
    assert inputs.shape[0] == 10_000

    # Vectorised over all 10,000 rows: lengths, EOS, sentinel order, noise density, span length.
    in_len, tg_len = (inputs > 0).sum(1), (targets > 0).sum(1)
    rows = np.arange(10_000)
    assert (inputs[rows, in_len - 1] == 1).all() and (targets[rows, tg_len - 1] == 1).all()
    in_sent, tg_sent = inputs >= 32000, targets >= 32000
    # Sentinels count down from <extra_id_0> in both; the same number in both, so each input
    # sentinel appears once in the targets, in order; the targets start with <extra_id_0>.
    for ids, is_sent in ((inputs, in_sent), (targets, tg_sent)):
        rank = np.cumsum(is_sent, axis=1) - 1
        assert (ids[is_sent] == (32099 - rank)[is_sent]).all()
    assert (in_sent.sum(1) == tg_sent.sum(1)).all() and (targets[:, 0] == 32099).all()
    noise = tg_len - 1 - tg_sent.sum(1)        # target tokens that are not sentinels or EOS
    nonnoise = in_len - 1 - in_sent.sum(1)
    spans = in_sent.sum(1)
    full = noise + nonnoise == 568
    assert full.sum() > 9_000
    assert (in_len[full] == 512).all() and (tg_len[full] == 114).all()  # 568 -> 512 / 114
    assert abs(noise.sum() / (noise.sum() + nonnoise.sum()) - 0.15) < 0.005
    assert abs(noise.sum() / spans.sum() - 3.0) < 0.1

    # On the first 1,500 rows: rebuild the raw stream (each input sentinel -> the span after it
    # in the targets) and look at where the noise falls and how long the spans are.
    rebuilt, span_lengths, position_noise = [], [], np.zeros(568)
    for i in range(1500):
        row_in, row_tg = inputs[i, :in_len[i] - 1], targets[i, :tg_len[i] - 1]
        starts = np.flatnonzero(row_tg >= 32000)
        spans_of = dict(zip(row_tg[starts], np.split(row_tg, starts[1:]), strict=True))
        mask = []
        for t in row_in.tolist():
            if t >= 32000:
                span = spans_of[t][1:].tolist()
                rebuilt.extend(span)
                mask.extend([1] * len(span))
                if full[i]:
                    span_lengths.append(len(span))
            else:
                rebuilt.append(t)
                mask.append(0)
        if full[i]:
            position_noise += mask
    # Inputs and targets together hold exactly the raw stream, in order, nothing lost or added.
    assert rebuilt == raw[:len(rebuilt)].tolist()
    # Span lengths follow a uniformly random composition of 85 noise tokens into 28 spans.
    span_lengths = np.array(span_lengths)
    for length in (1, 2, 3, 5):
        expected = _composition_part_pmf(85, 28, length)
        assert abs(np.mean(span_lengths == length) - expected) < 0.03, length
    # Noise is spread evenly along the sequence (the last token is always noise, by design).
    n_full = full[:1500].sum()
    middle = position_noise[50:518] / n_full
    assert np.all(np.abs(middle.reshape(-1, 52).mean(axis=1) - 0.15) < 0.02)
    assert position_noise[-1] == n_full


def test_iid_denoising_and_prefix_lm(tok):
    ds = tf.data.Dataset.from_tensors({"targets": tf.range(100, 400)})
    (row,) = _list(objectives.prefix_lm(ds, seed=3, lengths={"inputs": 512}))
    assert row["inputs"].tolist() + row["targets"].tolist() == list(range(100, 400))
    assert 1 <= len(row["inputs"]) < 300
    (row,) = _list(objectives.iid_denoising(ds, tok, seed=3, lengths={"inputs": 512}))
    sentinels = [t for t in row["inputs"].tolist() if t >= 32000]
    assert sentinels == [t for t in row["targets"].tolist() if t >= 32000][:len(sentinels)]
    noise = sum(1 for t in row["targets"].tolist() if t < 32000)
    assert 15 <= noise <= 80  # ~0.15 * 300


# ----------------------------------------------------------------------------- features, packing


def _examples(seed=0, n=60, max_in=40, max_tg=20):
    rng = np.random.default_rng(seed)
    return [(rng.integers(3, 500, size=rng.integers(1, max_in)).tolist() + [1],
             rng.integers(3, 500, size=rng.integers(1, max_tg)).tolist() + [1]) for _ in range(n)]


def _as_ds(examples):
    return tf.data.Dataset.from_tensor_slices({
        "inputs": tf.ragged.constant([e[0] for e in examples], dtype=tf.int32),
        "targets": tf.ragged.constant([e[1] for e in examples], dtype=tf.int32)})


def test_padded_features():
    rows = _list(features.pad_to_model_features(_as_ds([([5, 6, 1], [7, 8, 1])]),
                                                {"inputs": 5, "targets": 4}))
    assert {k: v.tolist() for k, v in rows[0].items()} == {
        "encoder_input_tokens": [5, 6, 1, 0, 0], "decoder_target_tokens": [7, 8, 1, 0],
        # SeqIO's shift: EOS also lands on the first padding position (no weight reads it).
        "decoder_input_tokens": [0, 7, 8, 1], "decoder_loss_weights": [1, 1, 1, 0]}


def test_features_start_decoder_inputs_with_the_configured_id():
    ds = _as_ds([([5, 6, 1], [7, 8, 1]), ([4, 1], [9, 1])])
    padded = _list(features.pad_to_model_features(ds, {"inputs": 5, "targets": 4},
                                                   decoder_start_token_id=3))
    assert padded[0]["decoder_input_tokens"].tolist() == [3, 7, 8, 1]
    (packed,) = _list(features.pack_to_model_features(ds, {"inputs": 6, "targets": 6},
                                                      decoder_start_token_id=3))
    assert packed["decoder_input_tokens"].tolist() == [3, 7, 8, 3, 9, 0]


def test_packing_invariants():
    examples = _examples()
    L, T = 64, 32
    rows = _list(features.pack_to_model_features(_as_ds(examples), {"inputs": L, "targets": T}))
    assert len(rows) < 0.7 * len(examples)  # actually packs
    unpacked, row_starts = [], []
    for r in rows:
        assert r["encoder_input_tokens"].shape == (L,) and r["decoder_target_tokens"].shape == (T,)
        for side, tokens_key, n in (("encoder", "encoder_input_tokens", L),
                                    ("decoder", "decoder_target_tokens", T)):
            seg, pos, tokens = r[f"{side}_segment_ids"], r[f"{side}_positions"], r[tokens_key]
            used = int((seg > 0).sum())
            assert (seg[:used] > 0).all() and (seg[used:] == 0).all() and (tokens[used:] == 0).all()
            steps = np.diff(seg[:used])
            assert seg[0] == 1 and (steps >= 0).all() and (steps <= 1).all()
            for s in range(1, seg.max() + 1):
                assert pos[seg == s].tolist() == list(range(int((seg == s).sum())))  # restart at 0
            assert (pos[used:] == 0).all()
        seg = r["decoder_segment_ids"]
        assert r["encoder_segment_ids"].max() == seg.max()
        row_starts.append(len(unpacked))
        dec_in, tg = r["decoder_input_tokens"], r["decoder_target_tokens"]
        for s in range(1, seg.max() + 1):
            span = tg[seg == s]
            assert dec_in[seg == s].tolist() == [0] + span[:-1].tolist()  # restart with 0
            unpacked.append((r["encoder_input_tokens"][r["encoder_segment_ids"] == s].tolist(),
                             span.tolist()))
        assert (r["decoder_loss_weights"] == (seg > 0)).all()
    assert unpacked == examples  # nothing dropped, cut or reordered
    # Greedy: a row was closed only because the next example did not fit in it.
    for r, nxt in zip(rows, row_starts[1:]):
        used_in = int((r["encoder_segment_ids"] > 0).sum())
        used_tg = int((r["decoder_segment_ids"] > 0).sum())
        assert used_in + len(examples[nxt][0]) > L or used_tg + len(examples[nxt][1]) > T


def test_packing_refuses_overlong_unless_truncating():
    ds = _as_ds([([5] * 10 + [1], [7, 1])])
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="longer than the row length 8.*truncate"):
        _list(features.pack_to_model_features(ds, {"inputs": 8, "targets": 4}))
    with pytest.raises(tf.errors.InvalidArgumentError, match="truncate"):
        _list(features.pad_to_model_features(ds, {"inputs": 8, "targets": 4}))
    (row,) = _list(features.pack_to_model_features(ds, {"inputs": 8, "targets": 4}, truncate=True))
    assert row["encoder_input_tokens"].tolist() == [5] * 7 + [1]


def _list_task(name, n, seed, lengths=None):
    rng = np.random.default_rng(seed)
    words = ["alpha", "beta", "gamma", "delta", "house", "river", "blue", "quick", "walks"]
    examples = [{"inputs": " ".join(rng.choice(words, size=rng.integers(1, 12))),
                 "targets": " ".join(rng.choice(words, size=rng.integers(1, 6)))} for _ in range(n)]
    return data.Task(name=name, source=ListSource({"train": examples}),
                     preprocessors=[functools.partial(fmt.prefix_text, prefix=f"{name}: "),
                                    prep.tokenize, prep.drop_empty, prep.append_eos],
                     output_lengths=lengths or {"inputs": 32, "targets": 16}, metrics=["accuracy"])


def test_same_seed_same_stream_and_checkpointed_iterator_resumes(tok, tmp_path):
    task = _list_task("toy", 60, seed=1)  # ~10 batches an epoch

    def pipeline():
        return data.make_model_dataset(task, "train", tok, batch_size=4, pack=True, shuffle=True,
                                       seed=5, num_epochs=None, prefetch=False)

    def take(it, n):
        return [{k: v.numpy() for k, v in next(it).items()} for _ in range(n)]

    first = take(iter(pipeline()), 6)
    again = take(iter(pipeline()), 6)
    assert all((a[k] == b[k]).all() for a, b in zip(first, again) for k in a)

    it = iter(pipeline())
    take(it, 3)
    ckpt = tf.train.Checkpoint(iterator=it)
    path = ckpt.save(str(tmp_path / "ckpt"))
    expected = take(it, 15)  # crosses an epoch boundary (reshuffled each epoch)
    resumed = iter(pipeline())
    tf.train.Checkpoint(iterator=resumed).restore(path).assert_consumed()
    got = take(resumed, 15)
    assert all((a[k] == b[k]).all() for a, b in zip(expected, got) for k in a)


def test_checkpointed_span_corruption_iterator_resumes(tok, tmp_path):
    rng = np.random.default_rng(0)
    docs = tf.ragged.constant([rng.integers(3, 32000, size=n).tolist()
                               for n in rng.integers(100, 1500, size=40)], dtype=tf.int32)

    def pipeline():
        ds = tf.data.Dataset.from_tensor_slices(docs).map(lambda d: {"targets": d})
        ds = ds.shuffle(16, seed=3).repeat()
        ds = prep.append_eos(objectives.span_corruption(ds, tok, seed=11))
        return features.pack_to_model_features(ds, {"inputs": 512, "targets": 114}).batch(2)

    it = iter(pipeline())
    for _ in range(3):
        next(it)
    path = tf.train.Checkpoint(iterator=it).save(str(tmp_path / "sc"))
    expected = [next(it)["encoder_input_tokens"].numpy() for _ in range(5)]
    resumed = iter(pipeline())
    tf.train.Checkpoint(iterator=resumed).restore(path)
    got = [next(resumed)["encoder_input_tokens"].numpy() for _ in range(5)]
    assert all((a == b).all() for a, b in zip(expected, got))


# ----------------------------------------------------------------------------- tasks, mixtures


def test_mixture_samples_by_rate(tok):
    a, b = _list_task("mix_a", 50, seed=2), _list_task("mix_b", 50, seed=3)
    mix = data.Mixture("toy_mix", [(a, 3.0), (b, 1.0)])
    ds = mix.get_dataset("train", tok, seed=0, keep_text=True).take(1000)
    texts = [_text(r["inputs_pretokenized"]) for r in _list(ds)]
    prefixes = [t.split(":")[0] for t in texts]
    share = prefixes.count("mix_a") / len(prefixes)
    assert abs(share - 0.75) < 0.04  # 3 standard deviations of a binomial share
    again = [_text(r["inputs_pretokenized"]) for r in
             _list(mix.get_dataset("train", tok, seed=0, keep_text=True).take(50))]
    assert again == texts[:50]  # a pipeline built again with the same seed gives the same stream
    assert mix.output_lengths == {"inputs": 32, "targets": 16}


def test_a_mixture_read_for_some_epochs_gives_each_example_that_often(tok):
    """An evaluation of a mixture (num_epochs=1) reads each task's examples once and ends,
    rather than sampling an endless stream with repeats."""
    a, b = _list_task("mix_a", 5, seed=2), _list_task("mix_b", 3, seed=3)
    mix = data.Mixture("toy_mix", [(a, 3.0), (b, 1.0)])
    once = [_text(r["inputs_pretokenized"]) for r in _list(
        mix.get_dataset("train", tok, seed=0, keep_text=True, shuffle=False, num_epochs=1))]
    assert len(once) == 8 and len(set(once)) == 8
    twice = [_text(r["inputs_pretokenized"]) for r in _list(
        mix.get_dataset("train", tok, seed=0, keep_text=True, num_epochs=2))]
    assert sorted(twice) == sorted(once * 2)
    assert len(_list(mix.get_dataset("train", tok, seed=0, keep_text=True).take(50))) == 50


def test_registry_and_builtin_tasks(tok):
    expected = {"glue_sst2", "glue_cola", "glue_mnli", "glue_qnli", "glue_qqp", "glue_rte",
                "glue_mrpc", "glue_stsb", "super_glue_boolq", "squad_v1_1", "cnn_dailymail",
                "wmt_en_de", "wmt_en_fr", "wmt_en_ro", "c4_span_corruption", "multi30k_en_de",
                "sst2_file", "wnut17"}
    assert expected <= set(data.list_tasks())
    assert "glue_proportional" in data.list_mixtures()
    assert data.get_task("wnut17").metrics == ["entity_f1"]
    from t5core.metrics import METRICS
    for name in data.list_tasks():  # every metric a built-in task names exists
        assert set(data.get_task(name).metrics) <= set(METRICS), name
    assert data.get_task("c4_span_corruption").output_lengths == {"inputs": 512, "targets": 114}
    with pytest.raises(KeyError, match="unknown task 'nope'"):
        data.get_task("nope")
    with pytest.raises(ValueError, match="already registered"):
        data.register_task(data.get_task("wnut17"))
    # Every classification label fits the task's target length with its EOS.
    from t5core.data import builtin_tasks
    for name, labels, _, _ in builtin_tasks._GLUE:
        limit = data.get_task(f"glue_{name}").output_lengths["targets"]
        assert all(len(tok.encode(label, add_eos=True)) <= limit for label in labels), name


def test_empty_examples_dropped_and_counted_in_a_task(tok):
    task = data.Task(name="with_empties",
                     source=ListSource({"train": [{"inputs": "a b", "targets": "c"},
                                                  {"inputs": "", "targets": "d"},
                                                  {"inputs": "x", "targets": "\u2581 "}]}),
                     preprocessors=[prep.tokenize, prep.drop_empty, prep.append_eos],
                     output_lengths={"inputs": 8, "targets": 8})
    rows = _list(task.get_dataset("train", tok))
    assert len(rows) == 1
    # "" is dropped by the source; "▁ " tokenizes to nothing and is dropped in the graph.
    assert task.counter["empty_examples"] == 2


# ----------------------------------------------------------------------------- NER format


def test_ner_format_and_parse():
    tokens = ["Empire", "State", "Building", "=", "ESB", ".", "Pretty", "bad", "storm"]
    tags = ["B-location", "I-location", "I-location", "O", "B-location", "O", "O", "O", "O"]
    text = wnut17_formatter(tokens, tags)["entities"]
    assert text == "location: Empire State Building ; location: ESB"
    assert parse_entities(text) == [("location", "Empire State Building"), ("location", "ESB")]
    assert parse_entities(text) == bio_to_entities(tokens, tags)
    assert wnut17_formatter(["hi"], ["O"])["entities"] == "none" and parse_entities("none") == []
    # An I- tag that does not continue an entity of its type starts a new one (conlleval).
    assert bio_to_entities(["a", "b", "c"], ["I-person", "I-group", "I-group"]) == [
        ("person", "a"), ("group", "b c")]
    # The target format is the one the entity metric scores.
    from t5core.metrics import entity_f1
    assert entity_f1([text], [text])["entity_f1"] == 100.0
    assert entity_f1([text], ["location: ESB"])["entity_recall"] == 50.0
    with pytest.raises(ValueError):
        bio_to_entities(["a"], ["X-foo"])


# ----------------------------------------------------------------------------- shared data


@pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason="../shared/data not present")
def test_file_tasks_on_shared_data(tok):
    rows = _list(data.get_task("multi30k_en_de").get_dataset(
        "validation", tok, data_dir=os.path.join(SHARED_DATA, "multi30k"), keep_text=True).take(2))
    assert _text(rows[0]["inputs_pretokenized"]).startswith("translate English to German: ")
    sst = data.get_task("sst2_file")
    for split in ("train", "validation"):
        row = _list(sst.get_dataset(split, tok, data_dir=os.path.join(SHARED_DATA, "sst2"),
                                    keep_text=True).take(1))[0]
        assert _text(row["inputs_pretokenized"]).startswith("sst2 sentence: ")
        assert _text(row["targets_pretokenized"]) in ("negative", "positive")
    wnut = _list(data.get_task("wnut17").get_dataset(
        "train", tok, data_dir=os.path.join(SHARED_DATA, "wnut17"), keep_text=True).take(1))[0]
    assert _text(wnut["targets_pretokenized"]) == "location: Empire State Building ; location: ESB"
