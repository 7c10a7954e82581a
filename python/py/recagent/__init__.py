"""recagent: simulate users in front of a recommender system, from Python.

The engine is Rust (bevy_ecs); this package drives it in process::

    import recagent
    sim = recagent.Simulation.from_config(seed=7, round=3, output_dir="out")
    sim.run()
    import pandas as pd
    pd.DataFrame(sim.metrics())

A recommender written in Python is any object with
``recommend(user, k, exclude, history) -> list of item ids`` (and optionally
``fit(interactions)``), passed as ``rec_model=obj``; see :class:`Recommender`.
Every engine error is a :class:`RecagentError` subclass.
"""

from typing import Any, Dict, List, Protocol, Sequence, runtime_checkable

from ._recagent import (
    METRIC_COLUMNS,
    CheckpointError,
    ConfigError,
    DataError,
    InterventionError,
    RecagentError,
    RecommenderError,
    RunExistsError,
    Simulation,
    SimulationError,
    __version__,
)

__all__ = [
    "Simulation",
    "Recommender",
    "RecagentError",
    "ConfigError",
    "DataError",
    "RunExistsError",
    "CheckpointError",
    "SimulationError",
    "RecommenderError",
    "InterventionError",
    "METRIC_COLUMNS",
    "__version__",
]


@runtime_checkable
class Recommender(Protocol):
    """The protocol of a recommender written in Python (``rec_model=obj``).

    ``recommend`` is called for every recommendation page an agent is shown, in the engine's
    deterministic order. An optional ``recommend_batch`` gets a round's first pages (every agent
    entering the recommender) in one call; later pages are asked one at a time, each after the
    agent's previous page decision. Item and user ids are the data files' ids.
    ``fit`` is optional: when present it is called once when the simulation is built (or
    resumed) and after every ``retrain_every``-th round.
    """

    def recommend(self, user: int, k: int, exclude: Sequence[int], history: Sequence[int]) -> Sequence[int]:
        """Up to ``k`` item ids for ``user``, best first.

        ``exclude``: the items already shown to ``user`` (ascending); any returned anyway are
        dropped, as are duplicates and items past the ``k``-th. ``history``: the items ``user``
        watched, in watch order. Fewer than ``k`` items (or none) is allowed: an empty page
        ends the agent's browsing.
        """
        ...

    def recommend_batch(
        self,
        users: Sequence[int],
        k: int,
        excludes: Sequence[Sequence[int]],
        histories: Sequence[Sequence[int]],
    ) -> Sequence[Sequence[int]]:
        """(Optional) ``recommend`` for several users at once: one list of item ids per user,
        in the order of ``users`` (``excludes[j]`` and ``histories[j]`` are user ``j``'s). The
        outputs are the same as per-user calls would give; a list of the wrong length is a
        :class:`RecommenderError`."""
        ...

    def fit(self, interactions: List[Dict[str, Any]]) -> None:
        """(Optional) Trains on every watch so far: dicts ``user_id, item_id, rating, round``
        (rating 0 = not rated yet; warm-start background users have negative ids)."""
        ...
