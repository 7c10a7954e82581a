"""Type stubs of the extension module ``recagent._recagent`` (re-exported by ``recagent``)."""

import os
from typing import Any, Dict, List, Optional, Union

__version__: str
#: Column names of ``metrics.csv`` / :meth:`Simulation.metrics`, in file order (stable).
METRIC_COLUMNS: List[str]

_Path = Union[str, "os.PathLike[str]"]

class RecagentError(Exception):
    """Base class of every error the engine raises."""

class ConfigError(RecagentError):
    """A bad configuration key or value."""

    #: The offending key (``"page_size"``, ``"memory.embedder"``), or None when unknown.
    key: Optional[str]
    #: 1-based line of the key in the config file, or None.
    line: Optional[int]
    #: Where the value came from: a file path, ``<embedded config>``, ``override``, ``checkpoint``.
    origin: Optional[str]
    #: What is wrong and what is allowed (without the origin and key).
    message: str

class DataError(RecagentError):
    """Bad input data; the message names the file and line."""

class RunExistsError(RecagentError):
    """The output folder holds an earlier run (pass ``overwrite=True`` or another ``output_dir``)."""

    dir: str
    files: List[str]

class CheckpointError(RecagentError):
    """A checkpoint could not be written, read or resumed."""

class SimulationError(RecagentError):
    """Building the simulation or running a round failed."""

class RecommenderError(RecagentError):
    """A Python recommender raised (the original exception is ``__cause__``) or returned
    something that is not a list of catalogue item ids. The failed round is rolled back: the
    simulation is as before the round and can be stepped again."""

    #: ``"recommend"`` or ``"fit"``.
    method: str
    #: The user of the failed ``recommend`` call, else None.
    user: Optional[int]
    #: The ``k`` of the failed ``recommend`` call, else None.
    k: Optional[int]

class InterventionError(RecagentError):
    """An intervention was refused and changed nothing: an unknown agent, a text or profile
    value out of range, or a setting that cannot change mid-run (the message says why and
    names the settings that can). A bad value for a live setting is a :class:`ConfigError`."""

class Simulation:
    """A simulation of agents in front of a recommender, run in process.

    Build one with :meth:`from_config` (a YAML file or the embedded default), ``Simulation(dict)``
    or :meth:`resume`; step it with :meth:`step` / :meth:`run`; read it with :meth:`agents`,
    :meth:`agent`, :meth:`interactions`, :meth:`messages`, :meth:`metrics` (lists of dicts:
    ``pandas.DataFrame(sim.interactions())``). Outputs are the CLI's, in :attr:`output_dir`:
    ``messages.jsonl``, ``interaction.csv``, ``metrics.csv``, ``manifest.json`` and
    ``checkpoints/round-NNNNNN.ckpt`` every ``checkpoint_every`` rounds (no ``run.log``: the
    engine's log goes nowhere from Python).

    Overrides are config keys (``seed=7, round=3, agent_num=10, rec_model="MF"``, nested:
    ``memory={"embedder": "hash"}`` or the CLI's dotted key through ``**{"memory.embedder": ...}``),
    exactly as ``recagent run --set key=value``. ``rec_model`` may also be a Python object
    (see :class:`recagent.Recommender`). A Simulation belongs to the thread that made it.
    """

    def __init__(
        self,
        config: Optional[Dict[str, Any]] = None,
        *,
        output_dir: Optional[_Path] = None,
        overwrite: bool = False,
        **overrides: Any,
    ) -> None:
        """Builds a simulation from a configuration dict.

        A dict naming none of the data files (``item_path``, ``user_path``,
        ``relationship_path``, ``rec_init_path``) overrides the embedded default (the bundled
        demo data); one that names one is read like a config file whose relative paths are
        the working directory's. ``output_dir``: the run folder (default: the configuration's
        ``output_dir``; ``./output`` for the embedded default). A folder holding an earlier run
        is refused with :class:`RunExistsError` unless ``overwrite=True``.

        Raises :class:`ConfigError`, :class:`DataError`, :class:`RunExistsError`,
        :class:`SimulationError`, or a :class:`RecommenderError` from the first ``fit``.
        """

    @staticmethod
    def from_config(
        path: Optional[_Path] = None,
        *,
        output_dir: Optional[_Path] = None,
        overwrite: bool = False,
        **overrides: Any,
    ) -> "Simulation":
        """Builds a simulation from a YAML config file (None: the embedded default config, the
        demo data and the offline user model) with ``overrides`` applied (the CLI's ``--set``).
        Errors as for ``Simulation(...)``."""

    @staticmethod
    def resume(path: _Path, **overrides: Any) -> "Simulation":
        """Resumes a run from its checkpoint ``path``: its outputs are truncated back to the
        checkpoint and the run goes on in its own folder. ``overrides`` may only name settings
        that can change mid-run (``round=10`` extends it). A run whose recommender was a Python
        object needs it again (``rec_model=obj``): its state is not checkpointed, it is
        re-fitted on the restored interactions. Raises :class:`CheckpointError`,
        :class:`ConfigError`."""

    def step(self) -> int:
        """Runs one round (with the GIL released) and returns the number of rounds completed.
        Writes the round's outputs, a checkpoint when due and the manifest. Raises
        :class:`SimulationError` past the configured ``round`` or when a round failed, and
        :class:`RecommenderError` (the round rolled back) for a failing Python recommender."""

    def run(self, rounds: Optional[int] = None, progress: bool = True) -> int:
        """Runs ``rounds`` more rounds (None: up to the configured ``round``), with a progress
        bar (tqdm when installed, else a line per round on stderr). Ctrl-C stops at the next
        round boundary (KeyboardInterrupt; the outputs are complete up to it). Returns the
        rounds completed. Errors as :meth:`step`."""

    @property
    def round(self) -> int:
        """Rounds completed (0 before the first step)."""

    @property
    def rounds(self) -> int:
        """Rounds the configuration plans (``round``)."""

    @property
    def time(self) -> str:
        """The simulated clock, ``YYYY-MM-DD HH:MM:SS``: the start of the latest round run (the
        time its messages carry), the configured ``start_time`` before the first round.
        ``datetime.fromisoformat`` reads it."""

    @property
    def output_dir(self) -> str:
        """The run folder (where ``manifest.json`` is)."""

    @property
    def config(self) -> Dict[str, Any]:
        """The resolved configuration (API keys redacted)."""

    def items(self) -> List[Dict[str, Any]]:
        """The catalogue, id order: ``item_id, title, genres`` (list of names), ``description``."""

    def agents(self) -> List[Dict[str, Any]]:
        """Every agent, id order: ``agent_id`` (= ``user_id`` in interactions), ``name,
        gender, age, traits, status, interest`` and the counts ``watched, heard, contacts``."""

    def agent(self, agent_id: int) -> Dict[str, Any]:
        """One agent: its profile (as :meth:`agents`), ``watched`` (``item_id, title, rating``
        with rating None until felt), ``heard`` (``item_id, title, round``), ``contacts``
        (``agent_id, closeness``) and ``memories`` (the texts its prompts recall, newest
        last). Raises KeyError for an unknown id."""

    def interactions(self) -> List[Dict[str, Any]]:
        """The rows of ``interaction.csv`` so far: ``user_id, item_id, label`` (1 watched, 0
        shown only), ``rating`` (1-5, 0 unrated), ``round, timestamp``."""

    def messages(self, round: Optional[int] = None) -> List[Dict[str, Any]]:
        """The messages so far (of one round with ``round=``): ``round, time, agent_id,
        action, content``, as in ``messages.jsonl``. Empty with ``write_messages: false``."""

    def metrics(self) -> List[Dict[str, Any]]:
        """One dict per round of ``metrics.csv`` (keys :data:`METRIC_COLUMNS`; an undefined
        value is None)."""

    def interview(self, agent: int, question: str) -> str:
        """Asks agent ``agent`` ``question`` now, at the boundary before the next round, and
        returns its answer, given by the configured behaviour backend (the ``interview``
        decision: an LLM with ``backend: llm``; offline, what the agent did with a movie named
        in ``<...>``, or who it is and what it liked lately). Question and answer go into the
        agent's memory and the next round's messages (action ``INTERVIEW``). Raises
        :class:`InterventionError` for an unknown agent or an empty question."""

    def send_message(self, agent: int, text: str) -> None:
        """Writes ``text`` (one line, 1-2,000 characters) into agent ``agent``'s memory
        (importance 8) and the next round's messages (action ``MESSAGE``)."""

    def edit_profile(self, agent: int, **fields: Any) -> None:
        """Changes agent ``agent``'s profile: ``age`` (1-120), ``gender``, ``traits``,
        ``status`` (occupation), ``interest`` (its liked genres are read again from it). Every
        field is checked before anything changes; the name cannot change. Raises
        :class:`InterventionError`."""

    def set(self, **settings: Any) -> None:
        """Changes settings from the next round on: ``rec_model`` (a fresh model fitted on the
        interactions so far), ``page_size``, ``rec_random_k``, ``active_prob``. Any other key
        raises :class:`InterventionError` with the reason; a bad value :class:`ConfigError`.
        Applied in the order given; the ones before a refused one stay applied."""

    def interventions(self) -> List[Dict[str, Any]]:
        """The interventions applied so far, as in ``interventions.jsonl``: ``before_round,
        seq, intervention`` (``{"kind": ..., ...}``) and, for an interview, ``answer``."""

    def checkpoint(self, path: _Path) -> str:
        """Writes a checkpoint of the current state to ``path`` (atomically); returns it."""

    def branch(self, out_dir: _Path, *, overwrite: bool = False, **overrides: Any) -> "Simulation":
        """A new run that starts from this one's current state (its outputs so far are copied)
        and writes into ``out_dir`` with ``overrides`` (settings that may change mid-run,
        e.g. ``rec_model="Random"``, ``round=8``). This simulation is unchanged and usable. A
        checkpoint of the current round is written in this run's checkpoint folder if there is
        none. A Python recommender is deep-copied for the branch unless ``rec_model=`` gives
        another. Raises as :meth:`resume`, and :class:`RunExistsError` for an ``out_dir``
        holding a run."""

    def _recommender_stats(self) -> "tuple[int, float]":
        """``(calls, seconds)`` of the Python recommender's ``recommend`` so far, timed around
        each call on the engine's side (``python/bench_overhead.py``); ``(0, 0.0)`` without one."""
