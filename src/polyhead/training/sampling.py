"""Which task each training step draws its batch from.

proportional: tasks appear as often as they have batches (big sets dominate);
temperature:  P(task) ~ n_task ** (1 / T), T > 1 flattens toward uniform (T=1 is proportional);
round_robin:  tasks take turns; small sets are recycled until the longest has been seen once.
"""
from __future__ import annotations

import random


def task_schedule(batches_per_task: dict[str, int], sampling: str, temperature: float, seed: int) -> list[str]:
    """A list of task names, one per step of an epoch. Its length is the total number of batches."""
    names = [n for n, count in batches_per_task.items() if count > 0]
    total = sum(batches_per_task[n] for n in names)
    rng = random.Random(seed)
    if not names:
        return []
    if sampling == "round_robin":
        rounds = max(batches_per_task[n] for n in names)
        return [n for _ in range(rounds) for n in names]
    power = 1.0 if sampling == "proportional" else 1.0 / temperature
    weights = [batches_per_task[n] ** power for n in names]
    if sampling == "proportional":
        schedule = [n for n in names for _ in range(batches_per_task[n])]
        rng.shuffle(schedule)
        return schedule
    return rng.choices(names, weights=weights, k=total)


def task_probabilities(batches_per_task: dict[str, int], sampling: str, temperature: float) -> dict[str, float]:
    names = [n for n, count in batches_per_task.items() if count > 0]
    if sampling == "round_robin":
        return {n: 1.0 / len(names) for n in names}
    power = 1.0 if sampling == "proportional" else 1.0 / temperature
    weights = {n: batches_per_task[n] ** power for n in names}
    norm = sum(weights.values())
    return {n: w / norm for n, w in weights.items()}
