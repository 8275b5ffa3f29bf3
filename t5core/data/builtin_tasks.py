"""Built-in tasks: the T5 paper's TFDS tasks (GLUE, SuperGLUE, SQuAD, CNN/DM, WMT, C4) and
file tasks for the data in ../shared/data (Multi30k, SST-2, WNUT17)."""

from __future__ import annotations

import functools

import t5core.data.objectives as sc
import t5core.data.preprocessors as prep
import t5core.data.text_formats as fmt
from t5core.data.embedded_tasks import EMBEDDED_TASK, EmbeddedSource
from t5core.data.sources import ConllSource, ParallelTextSource, TfdsSource, TsvSource
from t5core.data.tasks import Mixture, Task, register_mixture, register_task
from t5core.metrics.postprocess import bio_to_entities, format_entities

# Text examples {"inputs", "targets"} -> ids with EOS; empty examples dropped and counted.
TOKENIZE = (prep.tokenize, prep.drop_empty, prep.append_eos)

CLASSIFICATION_LENGTHS = {"inputs": 512, "targets": 8}

# (GLUE config name, label names, metrics, train size for the proportional mixture)
_GLUE = [
    ("cola", ["unacceptable", "acceptable"], ["mcc"], 8_551),
    ("sst2", ["negative", "positive"], ["accuracy"], 67_349),
    ("mrpc", ["not_equivalent", "equivalent"], ["accuracy", "f1"], 3_668),
    ("qqp", ["not_duplicate", "duplicate"], ["accuracy", "f1"], 363_846),
    ("mnli", ["entailment", "neutral", "contradiction"], ["accuracy"], 392_702),
    ("qnli", ["entailment", "not_entailment"], ["accuracy"], 104_743),
    ("rte", ["entailment", "not_entailment"], ["accuracy"], 2_490),
]
_MNLI_SPLITS = {"train": "train", "validation_matched": "validation_matched",
                "validation_mismatched": "validation_mismatched", "test_matched": "test_matched",
                "test_mismatched": "test_mismatched", "validation": "validation_matched"}
_STANDARD_SPLITS = {"train": "train", "validation": "validation", "test": "test"}


def wnut17_formatter(tokens, tags) -> dict[str, str]:
    """ConllSource formatter for WNUT17: the tweet text and its entities as the target text
    ("type: text ; type: text" in sentence order, "none" without any; BIO chunks as conlleval)."""
    return {"text": " ".join(tokens), "entities": format_entities(bio_to_entities(tokens, tags))}


def _register_all():
    glue_sizes = {}
    for name, labels, metrics, size in _GLUE:
        register_task(Task(
            name=f"glue_{name}",
            source=TfdsSource(f"glue/{name}",
                              splits=_MNLI_SPLITS if name == "mnli" else _STANDARD_SPLITS),
            preprocessors=[functools.partial(fmt.glue, benchmark_name=name, label_names=labels),
                           *TOKENIZE],
            output_lengths=CLASSIFICATION_LENGTHS, metrics=metrics,
            description=f"GLUE {name}: '{name} <field>: ...' -> {'/'.join(labels)}"),
            overwrite=True)
        glue_sizes[f"glue_{name}"] = size

    register_task(Task(
        name="glue_stsb", source=TfdsSource("glue/stsb", splits=_STANDARD_SPLITS),
        preprocessors=[fmt.stsb, *TOKENIZE], output_lengths=CLASSIFICATION_LENGTHS,
        metrics=["pearson", "spearman"],
        description="STS-B: 'stsb sentence1: ... sentence2: ...' -> score rounded to 0.2"),
        overwrite=True)
    glue_sizes["glue_stsb"] = 5_749
    register_mixture(Mixture("glue_proportional", list(glue_sizes.items())), overwrite=True)

    register_task(Task(
        name="super_glue_boolq", source=TfdsSource("super_glue/boolq", splits=_STANDARD_SPLITS),
        preprocessors=[functools.partial(fmt.glue, benchmark_name="boolq",
                                         label_names=["False", "True"]), *TOKENIZE],
        output_lengths=CLASSIFICATION_LENGTHS, metrics=["accuracy"],
        description="BoolQ: 'boolq passage: ... question: ...' -> False/True"), overwrite=True)

    register_task(Task(
        name="squad_v1_1",
        source=TfdsSource("squad/v1.1", splits={"train": "train", "validation": "validation"}),
        preprocessors=[fmt.squad, *TOKENIZE], output_lengths={"inputs": 512, "targets": 64},
        metrics=["squad"], description="SQuAD v1.1: 'question: ... context: ...' -> answer"),
        overwrite=True)

    register_task(Task(
        name="cnn_dailymail", source=TfdsSource("cnn_dailymail", splits=_STANDARD_SPLITS),
        preprocessors=[fmt.summarize, *TOKENIZE], output_lengths={"inputs": 512, "targets": 128},
        metrics=["rouge"], description="CNN/DailyMail: 'summarize: <article>' -> highlights"),
        overwrite=True)

    for src, tgt, tfds_name in [("en", "de", "wmt_t2t_translate/de-en"),
                                ("en", "fr", "wmt14_translate/fr-en"),
                                ("en", "ro", "wmt16_translate/ro-en")]:
        register_task(Task(
            name=f"wmt_{src}_{tgt}", source=TfdsSource(tfds_name, splits=_STANDARD_SPLITS),
            preprocessors=[functools.partial(fmt.translate, source_language=src,
                                             target_language=tgt), *TOKENIZE],
            output_lengths={"inputs": 512, "targets": 512}, metrics=["bleu"],
            description=f"WMT {src}->{tgt}: 'translate ... to ...: <{src}>' -> <{tgt}>"),
            overwrite=True)

    register_task(Task(
        name="c4_span_corruption",
        source=TfdsSource("c4/en", splits={"train": "train", "validation": "validation"}),
        preprocessors=[functools.partial(prep.rekey, mapping={"targets": "text"}),
                       functools.partial(prep.tokenize, keys=("targets",)),
                       functools.partial(prep.drop_empty, keys=("targets",)),
                       sc.span_corruption, prep.append_eos],
        output_lengths={"inputs": 512, "targets": 114}, truncate=False,
        description="C4 span corruption (noise 0.15, mean span 3): 568 tokens -> 512/114"),
        overwrite=True)

    register_task(Task(
        name=EMBEDDED_TASK, source=EmbeddedSource(), preprocessors=TOKENIZE,
        output_lengths={"inputs": 24, "targets": 12}, metrics=["accuracy"],
        description="the main job's embedded set: reverse, sort, add, upper; 'test' is the "
                    "held-out 'validation'"), overwrite=True)

    # ---- file tasks (data_dir = the folder holding the files, e.g. ../shared/data/multi30k)
    register_task(Task(
        name="multi30k_en_de",
        source=ParallelTextSource({
            "train": {"en": "train.en.gz", "de": "train.de.gz"},
            "validation": {"en": "val.en.gz", "de": "val.de.gz"},
            "test": {"en": "test_2016_flickr.en.gz", "de": "test_2016_flickr.de.gz"}}),
        preprocessors=[functools.partial(fmt.translate, source_language="en", target_language="de"),
                       *TOKENIZE],
        output_lengths={"inputs": 128, "targets": 128}, metrics=["bleu"],
        description="Multi30k en->de from files: 'translate English to German: ...'"),
        overwrite=True)

    register_task(Task(
        name="sst2_file",
        source=TsvSource({"train": "train.tsv.gz", "validation": "dev.tsv.gz",
                          "test": "test.tsv.gz"},
                         fields={"sentence": ("sentence", "content"), "label": "label"}),
        preprocessors=[functools.partial(fmt.glue, benchmark_name="sst2",
                                         label_names=["negative", "positive"]), *TOKENIZE],
        output_lengths={"inputs": 128, "targets": 8}, metrics=["accuracy"],
        description="SST-2 from label<TAB>sentence TSV files, GLUE sst2 format"), overwrite=True)

    register_task(Task(
        name="wnut17",
        source=ConllSource({"train": "train.conll", "test": "test.conll"},
                           formatter=wnut17_formatter),
        preprocessors=[functools.partial(fmt.prefix_text, prefix="ner: ", inputs_key="text",
                                         targets_key="entities"), *TOKENIZE],
        output_lengths={"inputs": 256, "targets": 128}, metrics=["entity_f1"],
        description="WNUT17 entities: 'ner: <tweet>' -> 'type: text ; ...' (wnut17_formatter)"),
        overwrite=True)


_register_all()
