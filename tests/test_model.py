"""MultiTaskModel: one encoder pass for every head, predictions with offsets, save/load round trips."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from polyhead import MultiTaskModel, SentenceEncoder
from polyhead.backbones import load_backbone
from polyhead.errors import PolyheadError
from polyhead.heads import ClassificationHead

NER_LABELS = ["O", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def make_model(backbone="minilm-l6", every_word="B-ORG") -> MultiTaskModel:
    encoder = SentenceEncoder(load_backbone(backbone), precision="fp32")
    torch.manual_seed(0)
    heads = {
        "topic": ClassificationHead("sentence_classification", encoder.dimension, ["politics", "sport", "tech"]),
        "sentiment": ClassificationHead("sentence_classification", encoder.dimension, ["0", "1"], hidden_dim=16),
        "ner": ClassificationHead("token_classification", encoder.backbone.hidden_size, NER_LABELS),
    }
    with torch.no_grad():  # make the NER head tag every word, so offsets of every word get checked
        heads["ner"].net[-1].weight.zero_()
        heads["ner"].net[-1].bias.copy_(torch.tensor([5.0 if lab == every_word else 0.0 for lab in NER_LABELS]))
    return MultiTaskModel(encoder, heads)


@pytest.fixture(scope="module")
def model():
    return make_model()


TEXTS = ["EU rejects German call to boycott British lamb.", "  Peter   Blackburn,  (London)  ", "",
         "naïve café owners — in São Paulo!", "Don't stop: U.S.-based e-mail"]


def test_predict_every_head_with_exact_offsets(model):
    results = model.predict(TEXTS)
    assert [r["text"] for r in results] == TEXTS
    for text, result in zip(TEXTS, results):
        assert set(result) == {"text", "topic", "sentiment", "ner"}
        assert result["topic"]["label"] in {"politics", "sport", "tech"}
        assert 0.0 < result["sentiment"]["score"] <= 1.0
        for entity in result["ner"]:
            assert text[entity["start"]:entity["end"]] == entity["text"]
            assert entity["text"] == entity["text"].strip() and entity["text"]
            assert entity["label"] == "ORG" and 0 < entity["score"] <= 1
    words = [e["text"] for e in results[0]["ner"]]
    assert words[:3] == ["EU", "rejects", "German"]
    assert results[2]["ner"] == []


def test_inside_tags_join_words_into_one_entity():
    model = make_model(every_word="I-PER")  # B- missing: lenient decoding starts an entity at the first I-
    entity = model.predict(["Peter Blackburn"])[0]["ner"]
    assert entity == [{"text": "Peter Blackburn", "label": "PER", "start": 0, "end": 15,
                       "score": entity[0]["score"]}]


def test_a_word_cut_by_truncation_is_left_out_whole():
    model = make_model(every_word="B-PER")
    model.encoder.text_tokenizer = type(model.encoder.text_tokenizer)(model.encoder.tokenizer, 8)
    # 8 tokens: [CLS] the new german leader angela mer [SEP]; "Merkel" (mer ##kel) straddles the cut
    text = "The new German leader Angela Merkel met Obama"
    words = [e["text"] for e in model.predict([text])[0]["ner"]]
    assert model.last_truncated == 1
    assert words == ["The", "new", "German", "leader", "Angela"]  # not "Mer"
    assert [e["text"] for e in model.predict(["Angela Merkel met Obama in Berlin"])[0]["ner"]] == \
        ["Angela", "Merkel", "met", "Obama", "in"]  # a cut between whole words loses nothing kept


def test_one_encoder_pass_feeds_every_head(model):
    calls = []
    handle = model.encoder.transformer.register_forward_hook(lambda *args: calls.append(1))
    try:
        model.predict(["one sentence", "another one"], batch_size=8)
    finally:
        handle.remove()
    assert len(calls) == 1


def test_save_load_round_trip_and_encoder_reuse(model, tmp_path):
    folder = model.save(tmp_path / "mtl")
    again = MultiTaskModel.from_pretrained(folder, precision="fp32")
    assert again.predict(TEXTS) == model.predict(TEXTS)
    for name in ("polyhead.json", "heads.safetensors", "model.safetensors", "tokenizer.json"):
        assert (folder / name).is_file()
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt"))
    encoder = SentenceEncoder.from_pretrained(str(folder), precision="fp32")
    assert np.abs(encoder.encode(TEXTS) - model.encoder.encode(TEXTS)).max() < 1e-6


def test_predict_errors(model, tmp_path):
    with pytest.raises(TypeError, match=r"texts\[0\]"):
        model.predict([None])
    with pytest.raises(PolyheadError, match="unknown task"):
        model.predict(["x"], tasks=["nope"])
    with pytest.raises(PolyheadError, match="not a saved polyhead multi-task model"):
        MultiTaskModel.from_pretrained(tmp_path)
