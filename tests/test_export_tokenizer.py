"""HF export writes the tokenizer files `transformers.AutoTokenizer` reads, for every tokenizer
kind (what AutoTokenizer then encodes is checked by tests/check_hf_tokenizer_export.py, outside
the suite: it needs transformers)."""

import json
import pathlib

import pytest

from t5core.checkpoints.export import export_hf_tokenizer
from t5core.commands.convert_checkpoint import describe_output

VOCAB = pathlib.Path(__file__).parent / "fixtures" / "t5_vocab"
SENTINELS_100 = [f"<extra_id_{i}>" for i in range(100)]


def _config(folder):
    return json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))


def _special_map(folder):
    return json.loads((folder / "special_tokens_map.json").read_text(encoding="utf-8"))


def test_sentencepiece_export_names_t5_tokenizer(tmp_path):
    files = export_hf_tokenizer(str(tmp_path), str(VOCAB / "spiece.model"))
    assert sorted(files) == ["special_tokens_map.json", "spiece.model", "tokenizer_config.json"]
    assert (tmp_path / "spiece.model").read_bytes() == (VOCAB / "spiece.model").read_bytes()
    config = _config(tmp_path)
    assert config["tokenizer_class"] == "T5Tokenizer"
    assert (config["extra_ids"], config["legacy"]) == (100, True)
    assert (config["eos_token"], config["pad_token"], config["unk_token"]) == \
        ("</s>", "<pad>", "<unk>")
    assert config["additional_special_tokens"] == SENTINELS_100
    assert _special_map(tmp_path)["additional_special_tokens"] == SENTINELS_100


def test_byte_level_export_names_byt5_tokenizer(tmp_path):
    files = export_hf_tokenizer(str(tmp_path), "byte")
    assert sorted(files) == ["special_tokens_map.json", "tokenizer_config.json"]
    config = _config(tmp_path)
    assert config["tokenizer_class"] == "ByT5Tokenizer" and config["extra_ids"] == 125
    assert len(config["additional_special_tokens"]) == 125
    assert not (tmp_path / "spiece.model").exists()  # the broken T5Tokenizer of before


def test_tokenizer_json_is_copied(tmp_path):
    files = export_hf_tokenizer(str(tmp_path), str(VOCAB / "tokenizer.json"))
    assert sorted(files) == ["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    assert (tmp_path / "tokenizer.json").read_bytes() == (VOCAB / "tokenizer.json").read_bytes()
    config = _config(tmp_path)
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast" and "extra_ids" not in config
    assert config["eos_token"] == "</s>"


@pytest.mark.parametrize("vocab,expected", [("byte", "ByT5Tokenizer"),
                                            (str(VOCAB / "spiece.model"), "T5Tokenizer")])
def test_convert_to_hf_writes_the_tokenizer_files(tmp_path, vocab, expected):
    added = describe_output(None, str(tmp_path), vocab, "hf")
    assert "tokenizer_config.json" in added
    assert _config(tmp_path)["tokenizer_class"] == expected


def test_a_byte_level_run_exports_as_byt5(tmp_path):
    """A run's model_dir names its tokenizer in run.json: "byte" becomes ByT5Tokenizer."""
    from t5core import model_dir

    run = tmp_path / "run"
    run.mkdir()
    model_dir.write_run(str(run), model_dir.RunDescription(tokenizer="byte"))
    out = tmp_path / "hf"
    describe_output(None, str(out), str(run), "hf")
    assert _config(out)["tokenizer_class"] == "ByT5Tokenizer"


def test_export_hf_takes_the_vocabulary(tmp_path):
    from t5core.config import T5Config
    from t5core.checkpoints import export_hf
    from t5core.model import T5Model

    config = T5Config(vocab_size=384, d_model=8, d_kv=4, num_heads=2, d_ff=16, num_layers=1,
                      num_decoder_layers=1)
    model = T5Model(config)
    export_hf(model, str(tmp_path), vocab="byte")
    assert _config(tmp_path)["tokenizer_class"] == "ByT5Tokenizer"
    assert (tmp_path / "config.json").exists()


@pytest.mark.parametrize("name", ["tokenizer_config.json", "config.json"])
def test_a_byt5_snapshot_reads_back_as_byte_level(tmp_path, name):
    """What the byte-level export writes (and a google/byt5 snapshot's config.json) names the
    tokenizer with no vocabulary file: every program finds it with no --vocab."""
    from t5core import model_dir
    from t5core.tokenizer import ByteTokenizer, load_tokenizer

    if name == "tokenizer_config.json":
        export_hf_tokenizer(str(tmp_path), "byte")
    else:
        (tmp_path / name).write_text(json.dumps({"tokenizer_class": "ByT5Tokenizer"}))
    assert model_dir.find_tokenizer(str(tmp_path)) == "byte"
    assert isinstance(load_tokenizer(str(tmp_path)), ByteTokenizer)
    (tmp_path / name).write_text(json.dumps({"tokenizer_class": "T5Tokenizer"}))
    assert model_dir.find_tokenizer(str(tmp_path)) is None  # still asks for --vocab


def test_a_byt5_snapshot_as_transformers_saves_it_reads_back_as_byte_level(tmp_path):
    """transformers' save_pretrained writes a tokenizer without a length limit with
    model_max_length int(1e30) (its VERY_LARGE_INTEGER), past the integers t5core reads as
    numbers: finding the tokenizer reads only tokenizer_class, so the snapshot still reads."""
    from t5core import model_dir
    from t5core.tokenizer import ByteTokenizer, load_tokenizer

    saved = {"tokenizer_class": "ByT5Tokenizer", "extra_ids": 0, "model_max_length": int(1e30),
             "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(saved))
    assert '"model_max_length": 1000000000000000019884624838656' in \
        (tmp_path / "tokenizer_config.json").read_text()
    assert model_dir.find_tokenizer(str(tmp_path)) == "byte"
    assert isinstance(load_tokenizer(str(tmp_path)), ByteTokenizer)
