"""Multilingual path: the e5 prefix, cross-lingual tables, bitext retrieval, and entity offsets in any script."""
from __future__ import annotations

import json
import unicodedata

import numpy as np
import pytest
import torch

from conftest import REPO, need_data, run_cli
from polyhead import MultiTaskModel, SentenceEncoder
from polyhead.backbones import Backbone, load_backbone
from polyhead.config import RunConfig, load_config
from polyhead.crosslingual import (bitext_retrieval, crosslingual_markdown, crosslingual_report, crosslingual_rows,
                                   read_parallel_sib200, top1_both_ways)
from polyhead.errors import DataError
from polyhead.heads import ClassificationHead
from polyhead.model import decode_entities, word_spans
from polyhead.training.loop import Trainer

LANGS = ["de", "es", "fr", "nl", "pt", "it"]


# ------------------------------------------------------------------------------------------ e5 prefix
@pytest.fixture(scope="module")
def e5_backbone():
    return load_backbone("multilingual-e5-small")


def tiny_backbone(meta: dict | None = None) -> Backbone:
    backbone = load_backbone("random:bert-tiny")
    backbone.meta.update(meta or {})
    return backbone


def test_e5_query_prefix_is_applied_by_default(e5_backbone):
    enc = SentenceEncoder(e5_backbone, precision="fp32")
    assert enc.prefix == "query: " and enc.settings()["prefix"] == "query: "
    text = ["Der Hund schläft im Garten."]
    assert np.abs(enc.encode(text) - enc.encode(["query: " + text[0]], prefix="")).max() < 1e-6
    assert SentenceEncoder(e5_backbone, prefix="", precision="fp32").prefix == ""


def test_prefix_is_saved_and_can_be_overridden(tmp_path):
    enc = SentenceEncoder(tiny_backbone({"query_prefix": "query: "}), precision="fp32")
    assert enc.prefix == "query: "
    folder = enc.save(tmp_path / "with")
    saved = json.loads((folder / "polyhead.json").read_text())
    assert saved["encoder"]["prefix"] == "query: " and saved["backbone"]["meta"]["query_prefix"] == "query: "
    st = json.loads((folder / "config_sentence_transformers.json").read_text())
    assert st["prompts"] == {"query": "query: "} and st["default_prompt_name"] == "query"
    again = SentenceEncoder.from_pretrained(str(folder), precision="fp32")
    assert again.prefix == "query: "
    assert np.abs(again.encode(["a b"]) - enc.encode(["a b"])).max() == 0
    # override at load time, then save: the empty prefix sticks, it does not fall back to the backbone's
    none = SentenceEncoder.from_pretrained(str(folder), prefix="", precision="fp32")
    assert none.prefix == ""
    assert np.abs(none.encode(["query: a b"]) - enc.encode(["a b"])).max() < 1e-6
    folder2 = none.save(tmp_path / "without")
    assert json.loads((folder2 / "polyhead.json").read_text())["encoder"]["prefix"] == ""
    assert "prompts" not in json.loads((folder2 / "config_sentence_transformers.json").read_text())
    assert SentenceEncoder.from_pretrained(str(folder2), precision="fp32").prefix == ""


def test_run_config_prefix_reaches_the_saved_model(tmp_path):
    rows = [{"text": f"sentence number {i}", "label": "ab"[i % 2]} for i in range(6)]
    data = tmp_path / "t.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = RunConfig.model_validate({
        "backbone": "random:bert-tiny", "prefix": "passage: ",
        "tasks": {"t": {"type": "sentence_classification", "train": {"path": str(data), "format": "jsonl"}}},
        "training": {"max_steps": 1, "batch_size": 2, "precision": "fp32"}, "output": str(tmp_path / "run")})
    Trainer(config, show_progress=False).run()
    model = MultiTaskModel.from_pretrained(tmp_path / "run" / "best")
    assert model.encoder.prefix == "passage: "


# -------------------------------------------------------------------------------- language x task table
def fake_config() -> RunConfig:
    spec = lambda name=None: {"path": "x.tsv", "format": "tsv", **({"name": name} if name else {})}  # noqa: E731
    return RunConfig.model_validate({"tasks": {
        "topic": {"type": "sentence_classification", "train": spec(), "test": spec(),
                  "eval": [spec("de"), spec("fr")]},
        "ner": {"type": "token_classification", "train": spec(), "test": spec("en"), "eval": [spec("es")]},
    }})


FAKE_RESULTS = {"topic": {"test": {"accuracy": 0.80, "n": 204}, "de": {"accuracy": 0.76, "n": 204},
                          "fr": {"accuracy": 0.60, "n": 204}},
                "ner": {"test": {"f1": 0.90, "n": 100}, "es": {"f1": 0.72, "n": 50}}}


def test_crosslingual_report_shares_and_table():
    report = crosslingual_report(FAKE_RESULTS, fake_config(), "test")
    assert report["languages"] == ["en", "de", "fr", "es"]
    topic = report["tasks"]["topic"]
    assert topic["metric"] == "accuracy" and topic["scores"]["en"] == 0.80
    assert topic["share_of_source"]["de"] == pytest.approx(0.95) and topic["share_of_source"]["en"] == 1.0
    assert topic["min_share"] == {"language": "fr", "share": pytest.approx(0.75)}
    assert report["tasks"]["ner"]["share_of_source"]["es"] == pytest.approx(0.8)
    header, rows = crosslingual_rows(report)
    assert header == ["language", "topic accuracy", "topic % of en", "ner f1", "ner % of en"]
    assert rows[0] == ["en (English)", "80.0", "100.0%", "90.0", "100.0%"]
    assert rows[1] == ["de (German)", "76.0", "95.0%", "–", "–"]  # no German NER set: a dash, not a zero
    markdown = crosslingual_markdown(report, "t")
    assert "| es (Spanish) | – | – | 72.0 | 80.0% |" in markdown
    assert "topic: lowest share of en is 75.0% (fr (French))" in markdown


def test_crosslingual_report_rejects_two_sets_with_one_language():
    results = {"topic": {"test": {"accuracy": 0.8, "n": 1}, "en": {"accuracy": 0.7, "n": 1}}}
    with pytest.raises(DataError, match="named 'en'"):
        crosslingual_report(results, fake_config(), "test")


def test_crosslingual_config_covers_every_language():
    config = load_config(REPO / "configs" / "crosslingual.yaml")
    assert config.backbone == "multilingual-e5-small"
    expected = {"topic": LANGS, "ner": ["es", "nl"], "sentiment": ["de", "es", "fr", "pt", "it"]}
    assert set(config.tasks) == set(expected)
    for name, task in config.tasks.items():
        assert task.train.name == task.dev.name == task.test.name == "en"
        assert sorted(spec.name for spec in task.eval) == sorted(expected[name])
    assert config.tasks["ner"].train.limit == 3000


def test_crosslingual_config_paths_exist():
    need_data("topic", "sib200")
    from polyhead.config import resolve_data_path

    config = load_config(REPO / "configs" / "crosslingual.yaml")
    for task in config.tasks.values():
        for spec in [task.train, task.dev, task.test, *task.eval]:
            assert resolve_data_path(config, spec.path).is_file(), spec.path
            if spec.labels_path:
                assert resolve_data_path(config, spec.labels_path).is_file(), spec.labels_path


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_eval_crosslingual_cli_end_to_end(tmp_path):
    topics = [("Der Stürmer traf zweimal", "sport"), ("Das Parlament beschloss das Budget", "politics"),
              ("The striker scored twice", "sport"), ("Parliament passed the budget", "politics")] * 2
    ner = [(["Peter", "visited", "London"], ["B-PER", "O", "B-LOC"]), (["EU", "rejects", "it"], ["B-ORG", "O", "O"])]
    ner_es = [(["Pedro", "visitó", "Madrid"], ["B-PER", "O", "B-LOC"])]
    topic_en = write_jsonl(tmp_path / "topic_en.jsonl", [{"text": t, "label": lab} for t, lab in topics[2:4]])
    topic_de = write_jsonl(tmp_path / "topic_de.jsonl", [{"text": t, "label": lab} for t, lab in topics[:2]])
    ner_en = write_jsonl(tmp_path / "ner_en.jsonl", [{"tokens": t, "tags": g} for t, g in ner])
    ner_es = write_jsonl(tmp_path / "ner_es.jsonl", [{"tokens": t, "tags": g} for t, g in ner_es])
    config = tmp_path / "xl.yaml"
    config.write_text(json.dumps({
        "backbone": "random:bert-tiny",
        "tasks": {
            "topic": {"type": "sentence_classification", "train": {"path": topic_en, "format": "jsonl"},
                      "test": {"path": topic_en, "format": "jsonl"},
                      "eval": [{"path": topic_de, "format": "jsonl", "name": "de"}]},
            "ner": {"type": "token_classification", "train": {"path": ner_en, "format": "jsonl"},
                    "test": {"path": ner_en, "format": "jsonl"},
                    "eval": [{"path": ner_es, "format": "jsonl", "name": "es"}]}},
        "training": {"max_steps": 2, "batch_size": 2, "precision": "fp32"},
        "output": str(tmp_path / "run")}))
    Trainer(load_config(config), show_progress=False).run()
    model = tmp_path / "run" / "best"
    result = run_cli("eval-crosslingual", "--model", str(model), "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "cross-lingual transfer" in result.stdout and "de (German)" in result.stdout
    report = json.loads((model / "crosslingual_test.json").read_text())
    assert report["languages"] == ["en", "de", "es"]
    assert set(report["tasks"]) == {"topic", "ner"} and report["tasks"]["topic"]["n"] == {"en": 2, "de": 2}
    assert report["metrics"]["topic"]["de"]["n"] == 2
    markdown = (model / "crosslingual_test.md").read_text()
    assert markdown.count("\n| ") == 4  # header + en, de, es
    bad = run_cli("eval-crosslingual", "--model", str(model), "--config", str(config), "--split", "train")
    assert bad.returncode == 2 and "--split" in bad.stderr


# ---------------------------------------------------------------------------------------- retrieval
def write_sib(root, language, rows, split="test"):
    folder = root / language
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["index_id\tcategory\ttext"] + [f"{i}\ttopic\t{text}" for i, text in rows]
    (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


SENTENCES = ["The cat sleeps on the warm mat.", "Parliament passed a new budget today.",
             "Heavy rain flooded the old town.", "She plays the violin every evening.",
             "The striker scored twice in the final.", "Prices of bread rose again this year."]


def test_top1_both_ways():
    a = np.eye(3, dtype=np.float32)
    b = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0]], dtype=np.float32)  # rows 1 and 2 swapped
    assert top1_both_ways(a, a) == (1.0, 1.0)
    assert top1_both_ways(a, b) == (pytest.approx(1 / 3), pytest.approx(1 / 3))


def test_bitext_retrieval_on_a_synthetic_parallel_corpus(tmp_path):
    root = tmp_path / "sib"
    write_sib(root, "eng_Latn", enumerate(SENTENCES))
    write_sib(root, "xxx_Latn", enumerate(SENTENCES))  # an exact copy: every sentence finds itself
    write_sib(root, "yyy_Latn", list(enumerate(SENTENCES))[::-1][:4])  # fewer sentences, other order
    assert read_parallel_sib200(root, "yyy_Latn", "test") == {str(i): SENTENCES[i] for i in (5, 4, 3, 2)}
    enc = SentenceEncoder.from_pretrained("minilm-l6", precision="fp32")  # random weights: near-equal cosines
    report = bitext_retrieval(enc, root, "eng_Latn", split="test")
    assert set(report["languages"]) == {"xxx_Latn", "yyy_Latn"}
    assert report["languages"]["xxx_Latn"] == {"n": 6, "source_to_language": 1.0, "language_to_source": 1.0}
    assert report["languages"]["yyy_Latn"]["n"] == 4 and report["min"] == 1.0
    with pytest.raises(DataError, match="split must be"):
        read_parallel_sib200(root, "eng_Latn", "validation")
    with pytest.raises(DataError, match="not found"):
        read_parallel_sib200(root, "zzz_Latn", "test")


def test_eval_retrieval_cli(tmp_path):
    root = tmp_path / "sib"
    write_sib(root, "eng_Latn", enumerate(SENTENCES))
    write_sib(root, "deu_Latn", enumerate(SENTENCES))
    out = tmp_path / "r.json"
    result = run_cli("eval-retrieval", "--model", "minilm-l6", "--data", str(root), "--split", "test",
                     "--precision", "fp32", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert "deu_Latn (German)" in result.stdout and "100.0" in result.stdout
    report = json.loads(out.read_text())
    assert report["languages"]["deu_Latn"]["n"] == 6 and report["min"] == 1.0
    assert "| deu_Latn (German) | 6 | 100.0 | 100.0 |" in out.with_suffix(".md").read_text()
    bad = run_cli("eval-retrieval", "--model", "random:bert-tiny", "--data", str(tmp_path / "none"))
    assert bad.returncode == 2 and "SIB-200 folder not found" in bad.stderr


@pytest.mark.slow
def test_e5_bitext_retrieval_on_real_sib200(e5_backbone):
    root = need_data("topic", "sib200")
    enc = SentenceEncoder(e5_backbone)
    report = bitext_retrieval(enc, root, "eng_Latn", ["deu_Latn", "nld_Latn"], split="dev")
    for language, scores in report["languages"].items():
        assert scores["n"] == 99
        assert scores["source_to_language"] >= 0.97 and scores["language_to_source"] >= 0.97, (language, scores)


# ------------------------------------------------------------------------------- scripts and offsets
NER_LABELS = ["O", "B-LOC", "I-LOC"]
SCRIPT_TEXTS = [
    "北京是中国的首都。",  # Chinese, no spaces
    "我住在 上海 和 北京",
    "東京タワーはTokyo Towerです",  # Japanese mixed with Latin
    "ذهب محمد إلى القاهرة",  # Arabic, right to left
    "\u200fمحمد\u200f يعيش في دبي",  # with right-to-left marks
    "I ❤️ Paris 🇫🇷 and 👩\u200d💻 in Berlin",  # emoji: variation selector, flag, ZWJ sequence
    "😀😀😀", "emoji👍at end👍",
    "\ufeffBOM first", " Paris\u00a0 London\u3000Tokyo ", "Zoë ﬁnds Ｔｏｋｙｏ café\u0301", "", "   ",
]


def e5_tokenizer_backbone() -> Backbone:
    """The real multilingual-e5-small tokenizer (XLM-R SentencePiece, "▁" offsets) on a tiny random BERT."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from polyhead.backbones.e5 import ensure_multilingual_e5_small

    folder = ensure_multilingual_e5_small()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, pad_token_id=tokenizer.pad_token_id)
    return Backbone(BertModel(config, add_pooling_layer=False), tokenizer, "e5-tokenizer", "test", False,
                    {"query_prefix": "query: "})


def tagging_model(backbone: Backbone, every_word: str) -> MultiTaskModel:
    encoder = SentenceEncoder(backbone, precision="fp32")
    head = ClassificationHead("token_classification", encoder.backbone.hidden_size, NER_LABELS)
    with torch.no_grad():  # every word gets `every_word`: every word's offsets are checked
        head.net[-1].weight.zero_()
        head.net[-1].bias.copy_(torch.tensor([5.0 if lab == every_word else 0.0 for lab in NER_LABELS]))
    return MultiTaskModel(encoder, {"ner": head})


def edge_is_visible(ch: str) -> bool:
    return not ch.isspace() and unicodedata.category(ch) != "Cf"


def check_entities(text: str, entities: list[dict]) -> None:
    last_end = 0
    for entity in entities:
        start, end = entity["start"], entity["end"]
        assert 0 <= last_end <= start < end <= len(text), (text, entity)
        assert text[start:end] == entity["text"], (text, entity)
        assert edge_is_visible(entity["text"][0]) and edge_is_visible(entity["text"][-1]), (text, entity)
        last_end = end


@pytest.fixture(scope="module", params=["e5", "distilmbert-tiny"])
def script_backbone(request):
    return e5_tokenizer_backbone() if request.param == "e5" else load_backbone("random:distilmbert-tiny")


@pytest.mark.parametrize("every_word", ["B-LOC", "I-LOC"])
def test_entity_offsets_hold_in_every_script(script_backbone, every_word):
    model = tagging_model(script_backbone, every_word)
    results = model.predict(SCRIPT_TEXTS)
    for text, result in zip(SCRIPT_TEXTS, results):
        check_entities(text, result["ner"])
        if text.strip():
            assert result["ner"], text
        else:
            assert result["ner"] == []
        if every_word == "I-LOC" and text.strip():  # one entity from the first to the last visible character
            assert len(result["ner"]) == 1 and result["ner"][0]["text"] == text.strip(" \ufeff\u200f\u00a0\u3000")


def entity_texts(model, text):
    return [e["text"] for e in model.predict([text])[0]["ner"]]


def test_e5_words_in_each_script():
    model = tagging_model(e5_tokenizer_backbone(), "B-LOC")
    assert model.encoder.prefix == "query: "  # predictions shift offsets back past the prefix
    assert entity_texts(model, "ذهب محمد إلى القاهرة") == ["ذهب", "محمد", "إلى", "القاهرة"]
    assert entity_texts(model, "\u200fمحمد\u200f يعيش في دبي")[0] == "محمد"  # no invisible RLM in the entity
    assert entity_texts(model, "\ufeffBOM first") == ["BOM", "first"]
    emoji = entity_texts(model, "I ❤️ Paris 🇫🇷 and 👩\u200d💻 in Berlin")
    assert {"I", "❤️", "Paris", "🇫🇷", "and", "in", "Berlin"} <= set(emoji)
    # SentencePiece sees an unspaced clause as one word; entities follow the tokenizer's pieces instead
    chinese = entity_texts(model, "北京是中国的首都。")
    assert len(chinese) > 1 and "北京" in chinese and "".join(chinese) == "北京是中国的首都。"
    assert "Tokyo" in entity_texts(model, "東京タワーはTokyo Towerです")


def test_distilmbert_splits_chinese_characters():
    model = tagging_model(load_backbone("random:distilmbert-tiny"), "B-LOC")
    assert entity_texts(model, "北京是中国的首都。") == list("北京是中国的首都。")


def test_decode_entities_with_leading_metaspace_offsets():
    # "query: Paris est belle": e5 offsets of "▁Paris" include the space before it
    text, shift = "Paris est belle", len("query: ")
    word_ids = [None, 0, 0, 1, 2, 3, None]
    offsets = [(0, 0), (0, 3), (3, 6), (6, 12), (12, 16), (16, 22), (0, 0)]
    probs = np.zeros((7, 3))
    probs[:, 0] = 1.0
    probs[3] = [0.0, 1.0, 0.0]  # "▁Paris" -> B-LOC
    assert decode_entities(text, probs, NER_LABELS, word_ids, offsets, shift) == [
        {"text": "Paris", "label": "LOC", "start": 0, "end": 5, "score": 1.0}]


def test_word_spans_without_text_keep_word_ids():
    spans = word_spans([None, 0, 0, 2, None], [(0, 0), (0, 2), (2, 4), (5, 7), (0, 0)])
    assert spans == {0: (1, 0, 4), 2: (3, 5, 7)}
