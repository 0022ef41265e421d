"""Word-shape (case) features for token heads: shapes, the `auto` rule, training, caching, save/load, predict."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from polyhead.backbones import load_backbone
from polyhead.data.word_shape import (CAPS_TEXT, DIGIT, LOWER, MIXED, PUNCT, TITLE, UNCASED, UPPER, token_shapes,
                                      word_shape, word_shapes, words_from_offsets)
from polyhead.heads import ClassificationHead
from polyhead.model import MultiTaskModel
from polyhead.training.loop import Trainer
from test_training import tiny_config


def test_shapes_of_words_in_normal_text_and_in_a_headline():
    assert word_shapes("EU rejects German call to boycott British lamb .".split()) == [
        UPPER, LOWER, TITLE, LOWER, LOWER, LOWER, TITLE, LOWER, PUNCT]
    # in a text written in capitals, capitals say nothing about a word
    assert set(word_shapes("SOCCER - JAPAN GET LUCKY WIN .".split())) == {CAPS_TEXT, PUNCT}
    assert [word_shape(w) for w in ["iPhone", "1996", "F16", "北京", "A", "U.S."]] == [
        MIXED, DIGIT, DIGIT, UNCASED, TITLE, UPPER]


def test_words_from_offsets_follow_the_tokenizer_and_the_original_text():
    backbone = load_backbone("minilm-l6")
    text = "EU rejects German call."
    enc = backbone.tokenizer.backend_tokenizer.encode(text)
    words = words_from_offsets(text, enc.word_ids, enc.offsets)
    assert words == ["EU", "rejects", "German", "call", "."]  # original capitals, though the ids are lowercase
    shapes = token_shapes(enc.word_ids, words)
    assert shapes[0] == 0 and shapes[1] == UPPER and len(shapes) == len(enc.ids)


def test_auto_turns_case_features_on_only_for_lowercasing_tokenizers():
    assert load_backbone("minilm-l6").lowercases
    assert not load_backbone("random:bert-tiny").lowercases  # cased WordPiece; small vocab maps both to [UNK]


def test_a_head_with_case_features_uses_the_shapes():
    head = ClassificationHead("token_classification", 8, ["O", "B-ORG", "I-ORG"], case_features=True).eval()
    states = torch.zeros(1, 3, 8)
    a = head(states, torch.tensor([[0, UPPER, LOWER]]))
    b = head(states, torch.tensor([[0, LOWER, LOWER]]))
    assert not torch.allclose(a[0, 1], b[0, 1]) and torch.allclose(a[0, 2], b[0, 2])
    with pytest.raises(ValueError, match="shapes"):
        head(states)
    with pytest.raises(ValueError, match="token_classification"):
        ClassificationHead("sentence_classification", 8, ["a", "b"], case_features=True)


def test_case_features_train_save_load_and_predict(tmp_path):
    config = tiny_config(tmp_path, max_steps=6)
    config.tasks["ner"].head.case_features = True
    Trainer(config, show_progress=False).run()
    model = MultiTaskModel.from_pretrained(tmp_path / "run" / "best", precision="fp32")
    assert model.heads["ner"].case_features and not model.heads["topic"].case_features
    saved = load_file(str(tmp_path / "run" / "best" / "heads.safetensors"))
    assert "ner.case_embedding.weight" in saved
    text = "EU rejects German call to boycott British lamb."
    first = model.predict([text])[0]
    assert all(text[e["start"]:e["end"]] == e["text"] for e in first["ner"])
    again = MultiTaskModel.from_pretrained(tmp_path / "run" / "best", precision="fp32").predict([text])[0]
    assert again == first


def test_case_features_cached_and_uncached_training_agree(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "p").mkdir()
    cached = tiny_config(tmp_path / "c", freeze="backbone", cache_features=True, max_steps=5)
    cached.tasks["ner"].head.case_features = True
    cached.tasks["ner"].head.dropout = 0.0
    cached.tasks["topic"].head.dropout = 0.0
    plain = cached.model_copy(deep=True)
    plain.training.cache_features = False
    plain.output = str(tmp_path / "p" / "run")
    Trainer(cached, show_progress=False).run()
    Trainer(plain, show_progress=False).run()
    a = load_file(cached.output + "/last/heads.safetensors")
    b = load_file(plain.output + "/last/heads.safetensors")
    assert set(a) == set(b) and "ner.case_embedding.weight" in a
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-4, rtol=1e-3)
