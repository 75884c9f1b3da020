"""``Population.remember``: one computation per question, and no question waits behind
another one's computation."""

from __future__ import annotations

import threading

import polars as pl
import pytest

from detectors.pairs.population import Population


def _population() -> Population:
    return Population(pl.LazyFrame({"x": [1]}))


def test_a_question_does_not_wait_for_another_ones_computation() -> None:
    population = _population()
    started, release = threading.Event(), threading.Event()
    answers: dict[str, object] = {}

    def slow() -> int:
        started.set()
        release.wait(timeout=5)
        return 1

    def ask_slow() -> None:
        answers["a"] = population.remember("a", slow)

    asking = threading.Thread(target=ask_slow)
    asking.start()
    started.wait(timeout=5)  # "a" is being computed
    assert population.remember("b", lambda: 2) == 2
    assert asking.is_alive()  # "b" was answered while "a" was still being computed
    release.set()
    asking.join(timeout=5)
    assert answers == {"a": 1}
    assert population.known("a") == 1


def test_the_same_question_asked_twice_at_once_is_computed_once() -> None:
    population = _population()
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []
    answers: list[object] = []

    def compute() -> str:
        calls.append(1)
        started.set()
        release.wait(timeout=5)
        return "answer"

    first = threading.Thread(target=lambda: answers.append(population.remember("k", compute)))
    first.start()
    started.wait(timeout=5)
    second = threading.Thread(target=lambda: answers.append(population.remember("k", compute)))
    second.start()
    release.set()
    first.join(timeout=5)
    second.join(timeout=5)
    assert answers == ["answer", "answer"]
    assert len(calls) == 1


def test_a_failed_computation_is_not_remembered() -> None:
    population = _population()

    def broken() -> int:
        raise RuntimeError("scan failed")

    with pytest.raises(RuntimeError, match="scan failed"):
        population.remember("k", broken)
    assert population.known("k") is None
    assert population.remember("k", lambda: 3) == 3
