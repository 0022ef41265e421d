"""Multi-task training: freezing semantics, LLRD, determinism, resume, feature cache, config errors."""
from __future__ import annotations

import json

import pytest
import torch

from polyhead.config import RunConfig, load_config
from polyhead.errors import ConfigError, DataError
from polyhead.model import MultiTaskModel
from polyhead.training.freezing import parameter_groups, transformer_layers
from polyhead.training.loop import Trainer

TOPICS = [("The striker scored twice in the final", "sport"), ("Parliament passed the new budget law", "politics"),
          ("The midfielder was injured in training", "sport"), ("The minister resigned after the vote", "politics"),
          ("Fans cheered as the team won the cup", "sport"), ("Senators debated the tax reform bill", "politics")]
NER = [(["Peter", "Blackburn", "visited", "London"], ["B-PER", "I-PER", "O", "B-LOC"]),
       (["EU", "rejects", "German", "call"], ["B-ORG", "O", "B-MISC", "O"]),
       (["Angela", "Merkel", "met", "Macron", "in", "Paris"], ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC"]),
       (["Apple", "opened", "a", "store", "in", "Berlin"], ["B-ORG", "O", "O", "O", "O", "B-LOC"])]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def tiny_config(tmp_path, backbone="random:bert-tiny", **training) -> RunConfig:
    topic = write_jsonl(tmp_path / "topic.jsonl", [{"text": t, "label": l} for t, l in TOPICS])
    ner = write_jsonl(tmp_path / "ner.jsonl", [{"tokens": t, "tags": g} for t, g in NER])
    data = {
        "backbone": backbone,
        "tasks": {
            "topic": {"type": "sentence_classification", "train": {"path": topic, "format": "jsonl"},
                      "dev": {"path": topic, "format": "jsonl"}},
            "ner": {"type": "token_classification", "train": {"path": ner, "format": "jsonl"},
                    "dev": {"path": ner, "format": "jsonl"}},
        },
        "training": {"max_steps": 4, "batch_size": 2, "lr": 1e-3, "precision": "fp32", "seed": 3,
                     "warmup_ratio": 0.0, **training},
        "output": str(tmp_path / "run"),
    }
    return RunConfig.model_validate(data)


def snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed(before, model, prefix) -> set[str]:
    after = model.state_dict()
    return {k for k in before if k.startswith(prefix) and not torch.equal(before[k], after[k])}


def keys(model, prefix) -> set[str]:
    return {k for k in model.state_dict() if k.startswith(prefix)}


def run_and_compare(config, tmp_path):
    """Train; capture the model's state right after its heads exist, before the first step."""
    trainer = Trainer(config, show_progress=False)
    captured = {}
    original = Trainer._prepare_data

    def prepare(self):
        original(self)
        captured["model"] = self.model
        captured["before_backbone"] = snapshot(self.model)

    Trainer._prepare_data = prepare
    try:
        summary = trainer.run()
    finally:
        Trainer._prepare_data = original
    return captured, trainer, summary


def test_freeze_none_trains_everything(tmp_path):
    captured, trainer, _ = run_and_compare(tiny_config(tmp_path), tmp_path)
    model = captured["model"]
    params = {f"encoder.transformer.{n}" for n, _ in model.encoder.transformer.named_parameters()}
    assert changed(captured["before_backbone"], model, "encoder.transformer.") == params
    assert changed(captured["before_backbone"], model, "heads.") == keys(model, "heads.")
    assert isinstance(trainer.model, MultiTaskModel)


def test_freeze_backbone_only_heads_change(tmp_path):
    config = tiny_config(tmp_path, freeze="backbone", cache_features=False)
    captured, trainer, summary = run_and_compare(config, tmp_path)
    model = captured["model"]
    after = trainer.model  # reloaded best; compare the live model too
    assert changed(captured["before_backbone"], model, "encoder.") == set()
    heads = {k: v for k, v in model.state_dict().items() if k.startswith("heads.")}
    assert heads and summary["trainable_parameters"] == sum(v.numel() for v in heads.values())
    assert after is not None


def test_freeze_bottom_layers(tmp_path):
    config = tiny_config(tmp_path, freeze="layers:1")
    captured, _, _ = run_and_compare(config, tmp_path)
    model = captured["model"]
    moved = changed(captured["before_backbone"], model, "encoder.transformer.")
    assert not any("embeddings" in k for k in moved)
    assert not any(".layer.0." in k for k in moved)
    assert any(".layer.1." in k for k in moved)


def test_freeze_all_needs_trained_heads(tmp_path):
    with pytest.raises(ConfigError, match="init_from"):
        Trainer(tiny_config(tmp_path, freeze="all"), show_progress=False).run()


def test_freeze_head_needs_trained_head(tmp_path):
    with pytest.raises(ConfigError, match="random initialisation"):
        Trainer(tiny_config(tmp_path, freeze="heads:[topic]"), show_progress=False).run()


def test_freeze_one_head_and_all_from_trained_model(tmp_path):
    first = tiny_config(tmp_path / "a" if (tmp_path / "a").mkdir() is None else None)
    Trainer(first, show_progress=False).run()
    trained = first.output + "/best"
    second = tiny_config(tmp_path / "a", freeze="heads:[topic]")
    second.init_from, second.output = trained, str(tmp_path / "b")
    captured, _, summary = run_and_compare(second, tmp_path)
    model = captured["model"]
    assert changed(captured["before_backbone"], model, "heads.topic.") == set()
    assert changed(captured["before_backbone"], model, "heads.ner.")
    assert changed(captured["before_backbone"], model, "encoder.transformer.")
    assert set(summary["frozen_heads"]["topic"]) == {"before", "after"}

    third = tiny_config(tmp_path / "a", freeze="all")
    third.init_from, third.output = trained, str(tmp_path / "c")
    captured, _, summary = run_and_compare(third, tmp_path)
    assert summary["steps"] == 0 and summary["trainable_parameters"] == 0
    assert changed(captured["before_backbone"], captured["model"], "") == set()
    assert "accuracy" in summary["dev"]["topic"]


def test_llrd_parameter_groups(tmp_path):
    config = tiny_config(tmp_path, llrd=0.5)
    trainer = Trainer(config, show_progress=False)
    import polyhead.training.loop as loop

    trainer.model = loop.build_model(config)
    trainer._prepare_data()
    groups = parameter_groups(trainer.model, lr=1e-3, llrd=0.5, weight_decay=0.01)
    by_name = {}
    for g in groups:
        by_name.setdefault(g["name"], set()).add(g["lr"])
    layers = len(transformer_layers(trainer.model.encoder.transformer))
    assert by_name["heads"] == {1e-3}
    assert by_name["backbone depth 0"] == {1e-3}  # top layer
    assert by_name[f"backbone depth {layers}"] == {1e-3 * 0.5 ** layers}  # embeddings
    layer0 = trainer.model.encoder.transformer.encoder.layer[0].attention.self.query.weight
    group = next(g for g in groups if any(p is layer0 for p in g["params"]))
    assert group["lr"] == pytest.approx(1e-3 * 0.5 ** (layers - 1))
    assert all(g["weight_decay"] == 0.0 for g in groups if any(p.ndim == 1 for p in g["params"]))


def test_training_is_deterministic(tmp_path):
    a = tiny_config(tmp_path / "x" if (tmp_path / "x").mkdir() is None else None)
    b = tiny_config(tmp_path / "x")
    b.output = str(tmp_path / "y")
    Trainer(a, show_progress=False).run()
    Trainer(b, show_progress=False).run()
    from safetensors.torch import load_file

    ha, hb = load_file(a.output + "/last/heads.safetensors"), load_file(b.output + "/last/heads.safetensors")
    assert all(torch.equal(ha[k], hb[k]) for k in ha)


def test_resume_continues_to_the_same_result(tmp_path):
    from safetensors.torch import load_file

    full = tiny_config(tmp_path / "f" if (tmp_path / "f").mkdir() is None else None, max_steps=6, eval_every=3)
    Trainer(full, show_progress=False).run()
    broken = tiny_config(tmp_path / "f", max_steps=6, eval_every=3)
    broken.output = str(tmp_path / "r")
    trainer = Trainer(broken, show_progress=False)
    calls = {"n": 0}
    original = Trainer.loss_on

    def crash_on_fifth(self, name, batch):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(self, name, batch)

    Trainer.loss_on = crash_on_fifth
    try:
        with pytest.raises(KeyboardInterrupt):
            trainer.run()
    finally:
        Trainer.loss_on = original
    assert json.loads((tmp_path / "r" / "last" / "trainer_state.json").read_text())["step"] == 3
    Trainer(broken, resume=True, show_progress=False).run()
    want = load_file(full.output + "/last/model.safetensors")
    got = load_file(broken.output + "/last/model.safetensors")
    assert max(float((want[k] - got[k]).abs().max()) for k in want) < 1e-6


def test_cached_features_train_like_uncached(tmp_path):
    cached = tiny_config(tmp_path / "c" if (tmp_path / "c").mkdir() is None else None, freeze="backbone",
                         max_steps=6)
    cached.tasks["topic"].head.dropout = 0.0
    cached.tasks["ner"].head.dropout = 0.0
    plain = cached.model_copy(deep=True)
    plain.training.cache_features = False
    plain.output = str(tmp_path / "plain")
    Trainer(cached, show_progress=False).run()
    Trainer(plain, show_progress=False).run()
    from safetensors.torch import load_file

    a, b = load_file(cached.output + "/last/heads.safetensors"), load_file(plain.output + "/last/heads.safetensors")
    start = Trainer(cached, show_progress=False)
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    # Adam moves every weight by ~lr per step (6e-3 here); the two paths differ only by float rounding
    assert diff < 5e-4, diff
    assert start is not None


def test_config_errors_name_key_and_line(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("backbone: minilm-l6\ntasks:\n  topic:\n    type: sentence_classification\n"
                    "    train: {path: x.tsv, format: tsv}\ntraining:\n  epochs: two\n  lr_typo: 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert f"{path}:7: config key 'training.epochs'" in message
    assert f"{path}:8: config key 'training.lr_typo': unknown key" in message
    with pytest.raises(ConfigError, match="training.freeze"):
        load_config(path, ["training.epochs=1", "training.lr_typo=", "training.freeze=sometimes"])


def test_missing_data_empty_train_and_unseen_labels(tmp_path):
    config = tiny_config(tmp_path)
    config.tasks["topic"].train.path = str(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="nope.jsonl"):
        Trainer(config, show_progress=False).run()
    config = tiny_config(tmp_path)
    config.tasks["topic"].train.path = write_jsonl(tmp_path / "empty.jsonl", [])
    with pytest.raises(DataError, match="no examples"):
        Trainer(config, show_progress=False).run()
    config = tiny_config(tmp_path)
    dev = write_jsonl(tmp_path / "dev.jsonl", [{"text": "x", "label": "sport"}, {"text": "y", "label": "weather"}])
    config.tasks["topic"].dev.path = dev
    with pytest.raises(DataError, match=r"dev.jsonl:2: label 'weather'"):
        Trainer(config, show_progress=False).run()
    config.tasks["topic"].unseen_labels = "skip"
    summary = Trainer(config, show_progress=False).run()
    assert summary["dev"]["topic"]["n"] == 1


def test_trained_encoder_takes_the_folders_max_length(tmp_path):
    """A run on minilm-l6 truncates where SentenceEncoder.from_pretrained("minilm-l6") does (the package's
    sentence_bert_config.json says 256), unless the config sets max_length."""
    import polyhead.training.loop as loop
    from polyhead.encoder import SentenceEncoder

    config = tiny_config(tmp_path, backbone="minilm-l6")
    assert loop.build_model(config).encoder.max_length == SentenceEncoder.from_pretrained("minilm-l6").max_length == 256
    config.max_length = 64
    assert loop.build_model(config).encoder.max_length == 64


def binary_task_yaml(tmp_path, task_lines: str = "") -> str:
    """A YAML run with one sentence task `s` whose file writes its labels 0 (politics) and 1 (sport)."""
    rows = [{"text": t, "label": "1" if g == "sport" else "0"} for t, g in TOPICS]
    data = write_jsonl(tmp_path / "binary.jsonl", rows)
    path = tmp_path / "run.yaml"
    path.write_text(f"backbone: random:bert-tiny\ntasks:\n  s:\n    type: sentence_classification\n"
                    f"    train: {{path: {data}, format: jsonl}}\n    dev: {{path: {data}, format: jsonl}}\n"
                    f"{task_lines}"
                    f"training: {{max_steps: 2, batch_size: 2, precision: fp32}}\noutput: {tmp_path / 'run'}\n")
    return str(path)


def test_label_names_rename_labels_in_head_reports_and_predictions(tmp_path):
    path = binary_task_yaml(tmp_path, "    label_names: {0: politics, 1: sport}\n")
    config = load_config(path)
    assert config.tasks["s"].label_names == {"0": "politics", "1": "sport"}  # YAML int keys read as text
    summary = Trainer(config, show_progress=False).run()
    assert set(summary["dev"]["s"]["per_class"]) >= {"politics", "sport"}
    model = MultiTaskModel.from_pretrained(tmp_path / "run" / "best")
    assert model.heads["s"].labels == ["politics", "sport"]
    assert model.predict(["The striker scored"])[0]["s"]["label"] in {"politics", "sport"}

    with pytest.raises(DataError, match=r"tasks.s.label_names: \['2'\] never occur"):
        Trainer(load_config(path, ["tasks.s.label_names={0: politics, 2: sport}"]), show_progress=False).run()
    with pytest.raises(ConfigError, match="label_names: only for sentence_classification"):
        load_config(path, ["tasks.s.type=token_classification"])


def test_ctrl_c_saves_the_step_in_hand_and_resume_refuses_other_settings(tmp_path):
    import os
    import signal

    from safetensors.torch import load_file

    (tmp_path / "f").mkdir()
    full = tiny_config(tmp_path / "f", max_steps=6, eval_every=100)
    Trainer(full, show_progress=False).run()
    stopped = tiny_config(tmp_path / "f", max_steps=6, eval_every=100)
    stopped.output = str(tmp_path / "r")
    calls = {"n": 0}
    original = Trainer.loss_on

    def ctrl_c_during_fifth(self, name, batch):
        calls["n"] += 1
        if calls["n"] == 5:
            os.kill(os.getpid(), signal.SIGINT)  # arrives mid-step: the step still completes
        return original(self, name, batch)

    Trainer.loss_on = ctrl_c_during_fifth
    try:
        with pytest.raises(KeyboardInterrupt):
            Trainer(stopped, show_progress=False).run()
    finally:
        Trainer.loss_on = original
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    state = json.loads((tmp_path / "r" / "last" / "trainer_state.json").read_text())
    assert state["step"] == 5 and state["best_score"] is None  # plain JSON, no -Infinity
    from polyhead.cli.outputs import check_run_folder
    from polyhead.errors import PolyheadError

    with pytest.raises(PolyheadError, match="unfinished run, checkpoint at step 5; pass --resume"):
        check_run_folder(tmp_path / "r", "--output")  # a forgotten --resume never trains over it

    other = tiny_config(tmp_path / "f", max_steps=6, eval_every=100, lr=5e-4)
    other.output = stopped.output
    with pytest.raises(ConfigError, match=r"--resume: this config differs.*training.lr: 0.001 in the run, 0.0005 now"):
        Trainer(other, resume=True, show_progress=False).run()
    Trainer(stopped, resume=True, show_progress=False).run()
    want = load_file(full.output + "/last/model.safetensors")
    got = load_file(stopped.output + "/last/model.safetensors")
    assert max(float((want[k] - got[k]).abs().max()) for k in want) < 1e-6
    assert json.loads((tmp_path / "r" / "config.json").read_text())["init_from"] is None  # not last/
    record = json.loads((tmp_path / "r" / "last" / "polyhead.json").read_text())["backbone"]
    assert record["source"] == json.loads((tmp_path / "f" / "run" / "last" / "polyhead.json").read_text())[
        "backbone"]["source"]  # the backbone the run was built on, not last/ itself

    (tmp_path / "typo").mkdir()
    (tmp_path / "typo" / "config.json").write_text("{}")
    with pytest.raises(PolyheadError, match="unfinished run, no checkpoint yet"):
        check_run_folder(tmp_path / "typo", "--output")
    stopped.output = str(tmp_path / "typo")
    with pytest.raises(ConfigError, match="--resume: no checkpoint to continue from"):
        Trainer(stopped, resume=True, show_progress=False).run()


def test_checkpoint_folders_are_swapped_in_whole(tmp_path):
    import polyhead.training.loop as loop
    from polyhead.saving import recover_folder

    model = loop.build_model(tiny_config(tmp_path))
    last = tmp_path / "last"
    model.save(last, finish=lambda folder: (folder / "w").write_text("step 1"))

    def write_half(folder):
        (folder / "w").write_text("half")
        raise OSError(28, "No space left on device")  # or a second Ctrl-C, halfway through writing step 2

    with pytest.raises(OSError):
        model.save(last, finish=write_half)
    assert (last / "w").read_text() == "step 1" and (last / "polyhead.json").is_file()
    (tmp_path / ".last.x1").mkdir()  # what a killed save leaves behind
    recover_folder(last)
    assert not (tmp_path / ".last.x1").exists()
    last.rename(tmp_path / ".last.old")  # cut between the two renames of a swap
    recover_folder(last)
    assert (last / "w").read_text() == "step 1"


def test_label_names_must_name_every_label_once_and_some_loss_must_count(tmp_path):
    path = binary_task_yaml(tmp_path)
    with pytest.raises(DataError, match=r"no name for label\(s\) \['1'\]"):
        Trainer(load_config(path, ["tasks.s.label_names={0: politics}"]), show_progress=False).run()
    with pytest.raises(ConfigError, match="'0' and '1' are both named 'x'"):
        load_config(path, ["tasks.s.label_names={0: x, 1: x}"])
    with pytest.raises(ConfigError, match="every task's weight is 0"):
        load_config(path, ["training.loss_weights={s: 0}"])
