"""Every error mmkgc-pyg raises on purpose, under one base, :class:`MMKGCError`.

Two families matter to a caller:

* :class:`InputError` and its subclasses: bad input from the user (a file, a setting, a
  name, an output that cannot be written). The message is one line that names the file
  (and line) or the setting and says what was expected. They are also ``ValueError``\\ s.
* Everything else: a call with impossible arguments (:class:`InvalidArgumentError`), a
  model that cannot be ranked (:class:`NonFiniteModelError`), training that diverged or
  was interrupted.

The library only raises; the command-line tools map the classes to exit statuses in one
place (``mmkgc_pyg.cli.common``).
"""
import reprlib
from typing import Any, List


class MMKGCError(Exception):
    """Base of every error raised by mmkgc-pyg."""


class InvalidArgumentError(MMKGCError, ValueError):
    """A library call got an argument of the wrong type or outside its range (a
    programming error, reported with its traceback)."""


class InputError(MMKGCError, ValueError):
    """Bad input from the user: a file, a setting or a name (one line naming it)."""


class ConfigError(InputError):
    """A configuration value outside its range or of the wrong type.

    Attributes:
        name (str): the setting.
        value: the value given.
        expected (str): what the setting accepts.
    """

    def __init__(self, name: str, value: Any, expected: str):
        # reprlib bounds the text of a huge or deeply nested value.
        super().__init__(f"{name}={reprlib.repr(value)}: expected {expected}")
        self.name, self.value, self.expected = name, value, expected


class CheckpointError(InputError):
    """A model or training checkpoint that is missing, unreadable, of another version or
    another run, or inconsistent."""


class OutputError(InputError):
    """An output that cannot be written: a folder in use, a file where a folder is
    expected, a read-only folder or a full disk."""


class MissingExtraError(InputError, ImportError):
    """An optional dependency is not installed (or fails to import)."""


class UnknownNameError(InputError, KeyError):
    """A name that is not among the model's entity or relation names.

    Attributes:
        argument (str): which part of the query named it (``"head"``, ``"relation"``,
            ``"tail"``).
        name (str): the unknown name.
        suggestions (List[str]): up to three close names of the same kind.
    """

    def __init__(self, argument: str, name: str, kind: str, suggestions: List[str]):
        super().__init__(argument, name)
        self.argument, self.name, self.kind, self.suggestions = argument, name, kind, suggestions

    def __str__(self) -> str:  # KeyError would show the repr of its arguments
        hint = (f"; did you mean {', '.join(map(repr, self.suggestions))}?"
                if self.suggestions else "")
        return f"{self.name!r}: expected {self.kind} name of the model, got an unknown one{hint}"


class AmbiguousNameError(InputError, KeyError):
    """A name that several entities (or relations) of the model share: which one is meant
    cannot be told (the dataset warned about it when it was loaded)."""

    def __init__(self, argument: str, name: str, ids: List[int]):
        super().__init__(argument, name)
        self.argument, self.name, self.ids = argument, name, ids

    def __str__(self) -> str:
        return (f"{self.name!r}: expected a name of one {self.argument}, got one shared by "
                f"ids {', '.join(map(str, self.ids))}")


class NonFiniteModelError(MMKGCError, ValueError):
    """The model's entity embeddings or queries hold NaN or infinity: ranks would be
    meaningless (NaN compares false, so it would rank first)."""


class TrainingDiverged(MMKGCError, RuntimeError):
    """The loss became NaN or infinite."""


class TrainingInterrupted(MMKGCError):
    """Training stopped between two steps because a stop was requested (e.g. by a signal
    handler); the trainer's state is that of the last step.

    Attributes:
        signal_number (int): the signal that asked for the stop.
        epoch (int): the epoch that was running (1-based).
        step (int): the steps of it that were done.
        checkpoint: where the training state of that point was written (None: nowhere).
    """

    def __init__(self, signal_number: int, epoch: int, step: int):
        super().__init__(f"interrupted in epoch {epoch} after step {step}")
        self.signal_number, self.epoch, self.step = signal_number, epoch, step
        self.checkpoint = None


class DataWarning(UserWarning):
    """A dataset that loads but may mislead: repeated names or triples, or evaluation
    triples that are also training triples."""
