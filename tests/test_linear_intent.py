"""bot.rasa.linear_intent: the intent classifier's model, its calibration and its noisy training copies, and
the component trained, stored, loaded and run through Rasa's own graph storage (the trained project model is
tested end to end by tests/test_nlu_heldout.py, tests/test_parse_route.py and the dialogue tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from actions.shared.asrnoise import DEFAULT_SEED, TRAINING_SEED, noisy
from bot.rasa.linear_intent import (
    TEMPERATURES,
    LinearIntentClassifier,
    LinearModel,
    calibrate,
    softmax,
    with_noisy_copies,
)

PHRASES = {
    "ask_balance": [
        "what is my balance",
        "how much do i owe",
        "whats my bill",
        "balance please",
        "my account",
    ],
    "book_appointment": ["book an engineer", "i need an appointment", "can someone come out", "book me in"],
    "goodbye": ["bye", "thats all thanks bye", "goodbye then", "cheers bye", "talk later"],
}
TEXTS = [t for ts in PHRASES.values() for t in ts for _ in range(3)]
LABELS = [label for label, ts in PHRASES.items() for _ in ts for _ in range(3)]


def test_softmax_rows_are_probabilities_and_sharpen_with_temperature() -> None:
    scores = np.array([[1.0, 0.0, -1.0], [0.2, 0.1, 0.0]])
    for t in (1.0, 5.0):
        p = softmax(scores, t)
        assert np.allclose(p.sum(axis=1), 1.0) and (p > 0).all()
        assert (p.argmax(axis=1) == scores.argmax(axis=1)).all()
    assert softmax(scores, 5.0)[0, 0] > softmax(scores, 1.0)[0, 0]
    assert np.isfinite(softmax(np.array([[1000.0, -1000.0]]), 20.0)).all()  # no overflow


def test_noisy_copies_follow_the_examples_with_training_seeds_only() -> None:
    texts, labels = with_noisy_copies(TEXTS, LABELS, 2)
    n = len(TEXTS)
    assert texts[:n] == TEXTS and labels == LABELS * 3
    assert texts[n : 2 * n] == [noisy(t, TRAINING_SEED) for t in TEXTS]
    assert texts[2 * n :] == [noisy(t, TRAINING_SEED + 1) for t in TEXTS]
    # The held-out noise is never trained on: its seed is none of the training seeds.
    assert DEFAULT_SEED not in range(TRAINING_SEED, TRAINING_SEED + 10)
    assert with_noisy_copies(TEXTS, LABELS, 0) == (TEXTS, LABELS)


def test_the_model_reads_new_wordings_and_survives_a_json_round_trip() -> None:
    model = LinearModel(1.0, 2, 4, seed=7).fit(TEXTS, LABELS)
    assert model.classes == sorted(PHRASES)
    unseen = ["um whats my balance", "could you book an engineer please", "ok bye bye"]
    assert [model.classes[i] for i in model.scores(unseen).argmax(axis=1)] == sorted(PHRASES)
    again = LinearModel.from_json(model.to_json(), 1.0, 2, 4)
    assert np.allclose(again.scores(unseen), model.scores(unseen))


def test_two_intents_still_give_one_score_each() -> None:
    texts = [t for t, label in zip(TEXTS, LABELS, strict=True) if label != "goodbye"]
    labels = [label for label in LABELS if label != "goodbye"]
    scores = LinearModel(1.0, 2, 4, seed=7).fit(texts, labels).scores(["book me in"])
    assert scores.shape == (1, 2) and scores[0].argmax() == 1  # book_appointment sorts second


def test_calibration_chooses_a_temperature_from_the_training_data() -> None:
    t = calibrate(TEXTS, LABELS, 1.0, 2, 4, seed=7, folds=3, copies=1)
    assert t in TEMPERATURES
    assert calibrate(TEXTS, LABELS, 1.0, 2, 4, seed=7, folds=3, copies=1) == t  # deterministic
    # Too little data to cross-validate: a fixed temperature, no exception.
    assert calibrate(["hi", "bye"], ["greet", "goodbye"], 1.0, 2, 4, seed=7, folds=5) == 5.0


def _component(
    storage: LocalModelStorage, config: dict[str, object], load: bool = False
) -> LinearIntentClassifier:
    resource = Resource("linear_intent")
    context = ExecutionContext(GraphSchema({}), "test")
    if load:
        return LinearIntentClassifier.load(config, storage, resource, context)
    return LinearIntentClassifier.create(config, storage, resource, context)


def test_component_trains_persists_loads_and_sets_intent_and_ranking(tmp_path: Path) -> None:
    storage = LocalModelStorage(tmp_path)
    config = {"folds": 3, "noisy_copies": 1, "ranking_length": 2}
    trained = _component(storage, config)
    data = TrainingData(
        [Message(data={"text": t, "intent": label}) for t, label in zip(TEXTS, LABELS, strict=True)]
    )
    trained.train(data)
    assert trained.temperature in TEMPERATURES

    loaded = _component(storage, config, load=True)
    assert loaded.temperature == trained.temperature
    messages = [Message(data={"text": "er what do i owe you"}), Message(data={"text": ""})]
    loaded.process(messages)
    intent = messages[0].get("intent")
    ranking = messages[0].get("intent_ranking")
    assert intent["name"] == "ask_balance" and 0.0 < intent["confidence"] <= 1.0
    assert len(ranking) == 2 and ranking[0] == intent
    assert ranking[0]["confidence"] >= ranking[1]["confidence"]
    assert messages[1].get("intent") is None  # no words, nothing said about them


def test_component_without_a_trained_model_leaves_messages_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = LocalModelStorage(tmp_path)
    empty = _component(storage, {}, load=True)
    assert "nothing trained" in caplog.text
    message = Message(data={"text": "what is my balance", "intent": {"name": "greet", "confidence": 0.5}})
    empty.process([message])
    assert message.get("intent") == {"name": "greet", "confidence": 0.5}
    one = _component(storage, {})
    one.train(TrainingData([Message(data={"text": "hello", "intent": "greet"})]))
    assert one.model is None and "fewer than two intents" in caplog.text
