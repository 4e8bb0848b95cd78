"""The intent classifier of the Attendant pipeline: a linear model on word and character n-grams, with
confidences calibrated on the training data itself.

Why not DIET's own intent head: on the held-out caller utterances (``nlu-data/test/``, never trained on) a
linear support-vector machine on TF-IDF word 1-2-grams and character 1-4-grams (inside word boundaries, so a
misheard or misspelt word still shares most of its pieces) generalises better than DIET trained on the same
~2,500 examples, and it trains in seconds, the same way every time (the README's editor section has the
figures). The ``digits`` entity comes from Rasa's RegexEntityExtractor; no TensorFlow model is trained.

Recogniser noise. Callers' words come through Vosk: dropped words, homophones, fillers, numbers as words.
The model learns from the training examples and from ``noisy_copies`` noisy copies of each
(:func:`actions.shared.asrnoise.noisy`, seeds from ``TRAINING_SEED`` up: never the held-out seed).

Confidence. A support-vector machine gives scores, not probabilities; the FallbackClassifier after this
component needs probabilities it can hold to a threshold ("ask when less than 60 % sure"). The scores are
turned into a softmax with a temperature chosen at training time by cross-validation on the training data:
the temperature that minimises the log-loss of out-of-fold predictions (temperature scaling). Nothing of the
held-out sets is used. The held-out folds are scored clean and with one more noisy copy, as callers sound.

Loaded by Rasa from ``bot/rasa/config.yml`` (``name: bot.rasa.linear_intent.LinearIntentClassifier``); it
runs inside the Rasa process and imports only :mod:`actions.shared.asrnoise` of the project.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

from actions.shared.asrnoise import TRAINING_SEED, noisy

logger = logging.getLogger(__name__)

TEMPERATURES = tuple(float(t) for t in np.arange(1.0, 20.01, 0.5))
"""The temperatures tried when calibrating (the softmax of ``temperature * score``)."""


def softmax(scores: NDArray[np.float64], temperature: float) -> NDArray[np.float64]:
    z = scores * temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


class LinearModel:
    """Word and character n-gram TF-IDF features and a one-vs-rest linear SVM; pure scikit-learn, no Rasa."""

    def __init__(self, c: float, word_ngrams: int, char_ngrams: int, seed: int) -> None:
        self.words = TfidfVectorizer(ngram_range=(1, word_ngrams), sublinear_tf=True)
        self.chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, char_ngrams), sublinear_tf=True)
        self.svm = LinearSVC(C=c, random_state=seed)

    def fit(self, texts: list[str], labels: list[str]) -> LinearModel:
        features = hstack([self.words.fit_transform(texts), self.chars.fit_transform(texts)]).tocsr()
        self.svm.fit(features, labels)
        return self

    def scores(self, texts: list[str]) -> NDArray[np.float64]:
        features = hstack([self.words.transform(texts), self.chars.transform(texts)]).tocsr()
        scores = self.svm.decision_function(features)
        if scores.ndim == 1:  # two intents only: one column, the second class's margin
            scores = np.stack([-scores, scores], axis=1)
        return scores  # type: ignore[no-any-return]

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.svm.classes_]

    def to_json(self) -> dict[str, Any]:
        return {
            "words": _vectoriser_json(self.words),
            "chars": _vectoriser_json(self.chars),
            "classes": self.classes,
            "coef": self.svm.coef_.tolist(),
            "intercept": self.svm.intercept_.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], c: float, word_ngrams: int, char_ngrams: int) -> LinearModel:
        model = cls(c, word_ngrams, char_ngrams, seed=0)
        _vectoriser_load(model.words, data["words"])
        _vectoriser_load(model.chars, data["chars"])
        model.svm.classes_ = np.array(data["classes"])
        model.svm.coef_ = np.array(data["coef"])
        model.svm.intercept_ = np.array(data["intercept"])
        return model


def _vectoriser_json(v: TfidfVectorizer) -> dict[str, Any]:
    return {"vocabulary": {k: int(i) for k, i in v.vocabulary_.items()}, "idf": v.idf_.tolist()}


def _vectoriser_load(v: TfidfVectorizer, data: dict[str, Any]) -> None:
    v.vocabulary_ = dict(data["vocabulary"])
    v.fixed_vocabulary_ = True
    v.idf_ = np.array(data["idf"])


def with_noisy_copies(texts: list[str], labels: list[str], copies: int) -> tuple[list[str], list[str]]:
    """The examples, then ``copies`` noisy copies of them all (seeds ``TRAINING_SEED``, +1, ...)."""
    out_texts, out_labels = list(texts), list(labels)
    for k in range(copies):
        out_texts += [noisy(t, TRAINING_SEED + k) for t in texts]
        out_labels += labels
    return out_texts, out_labels


def calibrate(
    texts: list[str],
    labels: list[str],
    c: float,
    word_ngrams: int,
    char_ngrams: int,
    seed: int,
    folds: int,
    copies: int = 0,
) -> float:
    """The temperature minimising the log-loss of out-of-fold predictions on the training data (each fold
    trained as the whole is, with its noisy copies; scored clean and with a noisy copy of another seed)."""
    counts = {label: labels.count(label) for label in set(labels)}
    folds = min(folds, min(counts.values()))
    if folds < 2 or len(counts) < 2:
        return 5.0
    y = np.array(labels)
    classes = sorted(counts)
    out_of_fold = np.zeros((2 * len(texts), len(classes)))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(texts, y):
        fold_texts, fold_labels = with_noisy_copies([texts[i] for i in train], list(y[train]), copies)
        model = LinearModel(c, word_ngrams, char_ngrams, seed).fit(fold_texts, fold_labels)
        column = [classes.index(k) for k in model.classes]
        out_of_fold[np.ix_(test, column)] = model.scores([texts[i] for i in test])
        heard = [noisy(texts[i], TRAINING_SEED + copies) for i in test]
        out_of_fold[np.ix_(test + len(texts), column)] = model.scores(heard)
    truth = np.array([classes.index(label) for label in labels] * 2)
    rows = np.arange(len(truth))

    def loss(t: float) -> float:
        return float(-np.mean(np.log(softmax(out_of_fold, t)[rows, truth] + 1e-12)))

    return min(TEMPERATURES, key=loss)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class LinearIntentClassifier(IntentClassifier, GraphComponent):  # type: ignore[misc]
    """Sets ``intent`` and ``intent_ranking`` from :class:`LinearModel`, replacing an earlier classifier's."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            "C": 1.0,
            "word_ngrams": 2,
            "char_ngrams": 4,
            "noisy_copies": 2,
            "folds": 5,
            "random_seed": 7,
            "ranking_length": 10,
        }

    @staticmethod
    def required_packages() -> list[str]:
        return ["sklearn"]

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        model: LinearModel | None = None,
        temperature: float = 5.0,
    ) -> None:
        self.config = {**self.get_default_config(), **config}
        self._storage = model_storage
        self._resource = resource
        self.model = model
        self.temperature = temperature

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> LinearIntentClassifier:
        return cls(config, model_storage, resource)

    def _params(self) -> tuple[float, int, int]:
        return float(self.config["C"]), int(self.config["word_ngrams"]), int(self.config["char_ngrams"])

    def train(self, training_data: TrainingData) -> Resource:
        examples = [e for e in training_data.intent_examples if e.get(INTENT) and e.get(TEXT)]
        texts = [str(e.get(TEXT)) for e in examples]
        labels = [str(e.get(INTENT)) for e in examples]
        if len(set(labels)) < 2:
            logger.warning("LinearIntentClassifier: fewer than two intents to tell apart; not trained")
            return self._resource
        c, words, chars = self._params()
        seed = int(self.config["random_seed"])
        copies = int(self.config["noisy_copies"])
        self.temperature = calibrate(texts, labels, c, words, chars, seed, int(self.config["folds"]), copies)
        self.model = LinearModel(c, words, chars, seed).fit(*with_noisy_copies(texts, labels, copies))
        logger.info(
            "LinearIntentClassifier: %d examples (and %d noisy copies of each), %d intents, temperature %.1f",
            len(texts),
            copies,
            len(set(labels)),
            self.temperature,
        )
        with self._storage.write_to(self._resource) as folder:
            (folder / "linear_intent.json").write_text(
                json.dumps({"temperature": self.temperature, "model": self.model.to_json()})
            )
        return self._resource

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> LinearIntentClassifier:
        merged = {**cls.get_default_config(), **config}
        try:
            with model_storage.read_from(resource) as folder:
                saved = json.loads((folder / "linear_intent.json").read_text())
        except (ValueError, FileNotFoundError):
            logger.warning("LinearIntentClassifier: nothing trained in this model; it will not classify")
            return cls(config, model_storage, resource)
        model = LinearModel.from_json(
            saved["model"], float(merged["C"]), int(merged["word_ngrams"]), int(merged["char_ngrams"])
        )
        return cls(config, model_storage, resource, model, float(saved["temperature"]))

    def process(self, messages: list[Message]) -> list[Message]:
        if self.model is None:
            return messages
        todo = [m for m in messages if m.get(TEXT)]
        if not todo:
            return messages
        probabilities = softmax(self.model.scores([str(m.get(TEXT)) for m in todo]), self.temperature)
        classes = self.model.classes
        length = int(self.config["ranking_length"])
        for message, row in zip(todo, probabilities, strict=True):
            order = np.argsort(-row)
            ranking = [{"name": classes[i], "confidence": float(row[i])} for i in order]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set("intent_ranking", ranking[:length] if length > 0 else ranking, add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
