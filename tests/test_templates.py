"""Templates: exact strings, postprocessors, and errors that point at the data."""

import pytest

from t5core.data import templates as T
from t5core.metrics import postprocess as P

SST2 = T.Classification({"0": "negative", "1": "positive"}, prefix="sst2")


def test_classification_t5_format_and_postprocess():
    ex = {"sentence": "a gorgeous , witty film", "label": "1"}
    assert SST2(ex) == {"inputs": "sst2 sentence: a gorgeous , witty film", "targets": "positive"}
    assert SST2({"sentence": "dull", "label": 0})["targets"] == "negative"  # int labels too
    assert SST2.postprocess(" positive\n") == "positive"
    assert SST2.postprocess("Positive") == P.INVALID_LABEL
    pair = T.Classification(
        ["entailment", "neutral", "contradiction"],
        prefix="mnli",
        text_fields=("hypothesis", "premise"),
    )
    ex = {"hypothesis": "A man sleeps.", "premise": "A man runs.", "label": 2}
    assert pair(ex) == {
        "inputs": "mnli hypothesis: A man sleeps. premise: A man runs.",
        "targets": "contradiction",
    }
    assert pair({**ex, "label": "neutral"})["targets"] == "neutral"


def test_label_words_and_inputs_alone():
    # The label words in label order (rank classification's candidates and evaluate.py's label
    # set), and the input text without a label (inference).
    assert SST2.words == ["negative", "positive"]
    assert SST2.inputs({"sentence": "dull"}) == "sst2 sentence: dull"


def test_label_outside_set_names_label_file_and_line():
    ex = {"sentence": "ok", "label": "2", "_source": "train.tsv", "_line": 17}
    with pytest.raises(
        ValueError,
        match=r"label '2' .*not in the label set \['0', '1'\] "
        r"\(train.tsv line 17\)",
    ):
        SST2(ex)


def test_missing_field_and_empty_target_name_the_field_and_line():
    with pytest.raises(
        ValueError,
        match=r"field 'sentence' is missing .*\(dev.tsv line 3\).*"
        r"\['label', 'text'\]",
    ):
        SST2({"text": "x", "label": "1", "_source": "dev.tsv", "_line": 3})
    tr = T.Translation()
    with pytest.raises(ValueError, match=r"empty target in field 'de' \(val.de line 9\)"):
        tr({"en": "A dog.", "de": "  ", "_source": "val.de", "_line": 9})
    with pytest.raises(ValueError, match=r"empty target.*'answers'.*\(squad.json line 4\)"):
        T.QuestionAnswering()(
            {
                "question": "q",
                "context": "c",
                "answers": {"text": []},
                "_source": "squad.json",
                "_line": 4,
            }
        )
    with pytest.raises(ValueError, match=r"empty target in field 'summary' \(line 2\)"):
        T.Summarization()({"document": "text", "summary": "", "_line": 2})
    # Inference needs no target.
    assert tr.inputs({"en": "A dog."}) == "translate English to German: A dog."


def test_translation_and_summarization_formats():
    assert T.Translation()({"en": "Two dogs play.", "de": "Zwei Hunde spielen."}) == {
        "inputs": "translate English to German: Two dogs play.",
        "targets": "Zwei Hunde spielen.",
    }
    fr = T.Translation(source_field="src", target_field="tgt", target_language="French")
    assert fr.inputs({"src": "Hi"}) == "translate English to French: Hi"
    assert T.Summarization()({"document": "Long text .", "summary": "Short."}) == {
        "inputs": "summarize: Long text .",
        "targets": "Short.",
    }


def test_question_answering_squad_format():
    qa = T.QuestionAnswering(extractive=True)
    ex = {
        "question": "Where is the tower?",
        "context": "The tower is in Paris.",
        "answers": {"text": ["Paris", "in Paris"], "answer_start": [16, 13]},
    }
    assert qa(ex) == {
        "inputs": "question: Where is the tower? context: The tower is in Paris.",
        "targets": "Paris",
    }
    assert qa.references(ex) == ["Paris", "in Paris"]
    with pytest.raises(ValueError, match="'Rome' is not in the context"):
        qa({**ex, "answers": ["Rome"]})
    # Abstractive: free text answer allowed.
    assert T.QuestionAnswering()({**ex, "answers": "In France."})["targets"] == "In France."


def test_ner_text_to_text():
    ner = T.NamedEntities(entity_types=["location", "person", "group"])
    ex = {
        "tokens": ["Empire", "State", "Building", "=", "ESB", ".", "@bob", "says", "hi"],
        "tags": [
            "B-location",
            "I-location",
            "I-location",
            "O",
            "B-location",
            "O",
            "B-person",
            "O",
            "O",
        ],
    }
    out = ner(ex)
    assert out == {
        "inputs": "ner: Empire State Building = ESB . @bob says hi",
        "targets": "location: Empire State Building ; location: ESB ; person: @bob",
    }
    assert ner.postprocess(out["targets"]) == [
        ("location", "Empire State Building"),
        ("location", "ESB"),
        ("person", "@bob"),
    ]
    assert ner({"tokens": ["no", "entities"], "tags": ["O", "O"]})["targets"] == "none"
    with pytest.raises(ValueError, match=r"'tags'.*'PER'.*\(test.conll line 40\)"):
        ner({"tokens": ["Bob"], "tags": ["PER"], "_source": "test.conll", "_line": 40})
    with pytest.raises(ValueError, match=r"entity type 'product' of 'iPhone'.*\(line 5\)"):
        ner({"tokens": ["iPhone"], "tags": ["B-product"], "_line": 5})
    with pytest.raises(ValueError, match="2 tokens but 1 tags"):
        ner({"tokens": ["a", "b"], "tags": ["O"]})
    with pytest.raises(ValueError, match="empty target: no tokens"):
        ner({"tokens": [], "tags": []})


def test_dialogue_window_and_truncation():
    turns = [
        "hello there",
        "hi , how can I help ?",
        "my order is late",
        "sorry , which order ?",
        "order 42 from monday",
    ]
    ex = {"turns": turns, "response": "It ships today ."}
    full = T.Dialogue()(ex)
    assert full["targets"] == "It ships today ."
    assert full["inputs"] == (
        "dialogue: user: hello there assistant: hi , how can I help ? "
        "user: my order is late assistant: sorry , which order ? "
        "user: order 42 from monday assistant:"
    )
    assert T.Dialogue(max_turns=2).inputs(ex) == (
        "dialogue: assistant: sorry , which order ? user: order 42 from monday assistant:"
    )
    # A budget of 80 characters drops turns from the oldest end.
    short = T.Dialogue(max_length=80).inputs(ex)
    assert (
        short == "dialogue: assistant: sorry , which order ? user: order 42 from monday assistant:"
    )
    assert len(short) <= 80
    # Only the last turn, still too long: words are cut from its start, tag kept.
    tiny = T.Dialogue(max_length=41).inputs(ex)
    assert tiny == "dialogue: user: 42 from monday assistant:" and len(tiny) == 41
    assert T.Dialogue(max_length=40).inputs(ex) == "dialogue: user: from monday assistant:"
    # A token budget through length_fn (here: whitespace words).
    n_words = lambda s: len(s.split())  # noqa: E731
    words = T.Dialogue(max_length=13, length_fn=n_words).inputs(ex)
    assert (
        words == "dialogue: assistant: sorry , which order ? user: order 42 from monday assistant:"
    )
    assert T.Dialogue(max_length=12, length_fn=n_words).inputs(ex) == (
        "dialogue: user: order 42 from monday assistant:"
    )
    dict_turns = {
        "turns": [{"speaker": "agent", "text": "Hello"}, ("customer", "Hi")],
        "response": "How can I help?",
    }
    assert (
        T.Dialogue(respond_as="agent").inputs(dict_turns)
        == "dialogue: agent: Hello customer: Hi agent:"
    )
    with pytest.raises(ValueError, match="max_length=5 leaves no room"):
        T.Dialogue(max_length=5).inputs(ex)
    with pytest.raises(
        ValueError, match=r"empty target in field 'response' \(chats.jsonl line 2\)"
    ):
        T.Dialogue()({"turns": turns, "response": "", "_source": "chats.jsonl", "_line": 2})


def test_dialogue_with_one_turn():
    assert T.Dialogue()({"turns": ["hi"], "response": "hello"}) == {
        "inputs": "dialogue: user: hi assistant:", "targets": "hello"}


@pytest.mark.parametrize("latest", [
    "我的订单什么时候到？请尽快回复我，谢谢。",          # Chinese: no spaces between words
    "注文はいつ届きますか？できるだけ早く教えてください。",  # Japanese
    "สวัสดีครับคำสั่งซื้อของผมจะมาถึงเมื่อไหร่",             # Thai: vowel signs are marks
    "cafe\u0301👍🏽👨\u200d👩\u200d👧na\u0308ive",           # accents, skin tone, joined emoji
])
@pytest.mark.parametrize("room", [30, 33, 40])
def test_dialogue_cuts_a_turn_without_spaces_to_its_longest_fitting_end(latest, room):
    # Text without spaces is one "word": it is cut at characters, not dropped. The kept end
    # is the longest that fits and begins with a whole character, never a lone mark or joiner.
    dialogue = T.Dialogue(max_length=room)
    inputs = dialogue.inputs({"turns": ["hi", "hello", latest]})
    kept = inputs.removeprefix("dialogue: user: ").removesuffix(" assistant:")
    assert len(inputs) <= room and kept and latest.endswith(kept)
    start = len(latest) - len(kept)
    starts = T.task_types._character_starts(latest)
    assert start in starts
    longer = max(i for i in starts if i < start)
    assert len(inputs) - len(kept) + len(latest) - longer > room


@pytest.mark.parametrize("latest,kept", [
    ("we visited 🇯🇵🇫🇷", "🇫🇷"),  # not 🇵🇫 (French Polynesia) and a stray 🇷
    ("\u1112\u1161\u11ab\u1100\u116e\u11a8", "\u1100\u116e\u11a8"),  # 한국 in jamo (NFD)
    ("भारत क्षत्रिय", "त्रिय"),  # an Indic conjunct stays whole
    ("🇯🇵🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",
     "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"),  # a tag sequence
])
def test_dialogue_cuts_between_user_perceived_characters(latest, kept):
    """A cut keeps Unicode's grapheme clusters whole: a flag's two regional indicators, a
    Hangul syllable written in jamo, a conjunct, an emoji tag sequence. (One code point more
    of room would fit a tail that starts inside one.)"""
    room = len("dialogue: user:  assistant:") + len(kept) + 1
    inputs = T.Dialogue(max_length=room).inputs({"turns": [latest]})
    assert inputs == f"dialogue: user: {kept} assistant:"


def test_instruction_phrasings_are_deterministic_and_varied():
    ex = {"sentence": "a gorgeous film", "label": "1"}
    phrasings = T.INSTRUCTIONS["classification"]
    for i in range(len(phrasings)):
        out = T.Instruction(SST2, index=i)(ex)
        assert out["inputs"] == phrasings[i].format(
            text="a gorgeous film", options="negative, positive"
        )
        assert out["targets"] == "positive"
    inst = T.Instruction(SST2, seed=7)
    sentences = [f"review number {i}" for i in range(40)]
    chosen = [inst.inputs({"sentence": s}) for s in sentences]
    assert chosen == [T.Instruction(SST2, seed=7).inputs({"sentence": s}) for s in sentences]
    assert (
        len({c.replace(s, "") for c, s in zip(chosen, sentences, strict=True)}) >= 3
    )  # several phrasings
    other_seed = [T.Instruction(SST2, seed=8).inputs({"sentence": s}) for s in sentences]
    assert other_seed != chosen
    # Inference and training pick the same phrasing (the target is not hashed).
    assert inst(ex)["inputs"] == inst.inputs({"sentence": "a gorgeous film"})
    assert inst.postprocess("negative ") == "negative"
    for task, base, example in [
        ("qa", T.QuestionAnswering(), {"question": "Q?", "context": "C.", "answers": ["C"]}),
        ("translation", T.Translation(), {"en": "Hi.", "de": "Hallo."}),
        ("summarization", T.Summarization(), {"document": "D.", "summary": "S."}),
        ("ner", T.NamedEntities(), {"tokens": ["Bob"], "tags": ["B-person"]}),
        ("dialogue", T.Dialogue(), {"turns": ["hi"], "response": "hello"}),
    ]:
        for i in range(len(T.INSTRUCTIONS[task])):
            out = T.Instruction(base, index=i)(example)
            assert "{" not in out["inputs"] and out["targets"] == base(example)["targets"]
    with pytest.raises(ValueError, match="uses field 'document'.*Classification"):
        T.Instruction(SST2, phrasings=["Summarize {document}"])(ex)
