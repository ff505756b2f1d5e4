"""Sequence-level reward functions for the TextGen-* envs.

Rewards follow TRL's reward-function contract (``GRPOTrainer``'s ``reward_funcs``): they
are called with keywords only, one list entry per row, and return one float per row::

    reward(prompts=..., completions=..., completion_ids=..., references=..., **columns)
        -> list[float]

``prompts`` and ``completions`` are lists of str, one per finished episode;
``completion_ids`` the generated token ids of each row (a list of int lists, EOS
included when the episode ended on it); ``references`` one list of reference texts per
row; ``columns`` the task's other per-row fields (``label`` on TextGen-TinyReviews and
TextGen-IMDB: the review's class, None for a prompt given to ``make_state``). A reward
takes the keywords it needs and ``**kwargs`` for the rest, as in TRL
(``def reward(completions, **kwargs)``); an env passes a function without ``**kwargs``
only the keywords it names, and refuses at ``gym.make`` one whose required parameters
are not among them (:func:`reward_keywords`). An env scores all episodes that finish
together in one call, so model-based rewards run one batched forward pass instead of one
per episode.

TRL lets a reward return None for a row it does not apply to; an env episode always needs
a reward, so :func:`check_rewards` refuses None, as it refuses the wrong number of values
and NaN / inf.

The built-in rewards (``make_reward("cider-d")``, :data:`REWARDS`) accept and ignore every
keyword they do not use (``completion_ids``, dataset columns, and TRL's ``trainer_state``,
``log_extra``, ``log_metric``), so the same objects work in the envs and as TRL
``reward_funcs``; TRL logs them under their registry name (``rewards/lexicon-sentiment``).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from lfi_gym.envs.text.cider import DocumentFrequency, Tokenizer, cider_d, coco_tokenize
from lfi_gym.envs.validation import check_choice, check_int_at_least, check_positive_float

__all__ = [
    "REWARDS",
    "BLEUReward",
    "CIDErDReward",
    "LexiconSentimentReward",
    "RewardError",
    "RewardFunction",
    "SequenceClassifierReward",
    "SpiceUnavailableError",
    "SpiderReward",
    "check_rewards",
    "make_reward",
    "register_reward",
    "reward_keywords",
    "reward_name",
    "spice_available",
    "spice_unavailable_reason",
]

#: ``(*, prompts, completions, completion_ids, references, **columns) -> one float per row``.
RewardFunction: TypeAlias = Callable[..., Sequence[float]]

#: The keywords an env passes to every reward call (the task's columns come on top).
REWARD_KEYWORDS = ("prompts", "completions", "completion_ids", "references")

_SCORE_ON = ("prompt+completion", "completion")


class RewardError(ValueError):
    """A reward function was misconfigured, given bad rows, or returned bad values."""


class SpiceUnavailableError(RuntimeError):
    """SPICE cannot run on this machine (no pycocoevalcap, no java, or no CoreNLP jars)."""


# -- validation -----------------------------------------------------------------------------


def check_rewards(values: Any, n: int, name: str) -> np.ndarray:
    """The rewards of ``n`` rows as a float64 array of shape (n,), or a RewardError.

    The error names the reward function ``name`` and says what is wrong: the wrong number
    of values, values that are not numbers, None (TRL's "not applicable") or NaN / inf
    (with the rows that hold them), because a silent NaN in a reward corrupts every
    gradient after it.
    """
    if hasattr(values, "detach") and hasattr(values, "cpu"):  # a torch tensor
        values = values.detach().cpu().numpy()
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as error:
        raise RewardError(
            f"reward function {name!r} returned {type(values).__name__} that is not a sequence "
            f"of numbers ({error}); it must return one float per row"
        ) from error
    if array.dtype == object and array.ndim == 1:
        missing = [i for i, value in enumerate(array) if value is None]
        if missing:
            raise RewardError(
                f"reward function {name!r} returned None at rows {missing[:10]}; TRL reads None "
                "as 'not applicable', but every finished episode needs a reward: return a float "
                "for every row (e.g. 0.0)"
            )
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)
    ):
        raise RewardError(
            f"reward function {name!r} returned values of type {array.dtype} (e.g. "
            f"{_first(values)!r}); it must return one float per row"
        )
    if np.iscomplexobj(array):
        raise RewardError(f"reward function {name!r} returned complex values; return real floats")
    if array.ndim != 1 or array.shape[0] != n:
        raise RewardError(
            f"reward function {name!r} returned {array.size} value(s) of shape {array.shape} for "
            f"{n} rows; it must return exactly one float per row (shape ({n},))"
        )
    array = array.astype(np.float64, copy=False)
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        kinds = sorted({"NaN" if np.isnan(array[i]) else "inf" for i in bad})
        raise RewardError(
            f"reward function {name!r} returned {' / '.join(kinds)} at rows {bad.tolist()}; "
            "rewards must be finite"
        )
    return array


def _first(values: Any) -> Any:
    try:
        return next(iter(values))
    except (TypeError, StopIteration):
        return values


def _check_rows(
    name: str,
    prompts: Sequence[str],
    completions: Sequence[str],
    references: Sequence[Sequence[str]] | None,
    *,
    need_references: bool,
) -> list[list[str]] | None:
    """Validate one batch; returns references as lists (a bare str row becomes [str])."""
    for label, texts in (("prompts", prompts), ("completions", completions)):
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise RewardError(
                f"{name}: {label} must be a list of str (one per row), got {type(texts).__name__}"
            )
        wrong = [i for i, text in enumerate(texts) if not isinstance(text, str)]
        if wrong:
            raise RewardError(
                f"{name}: {label} rows {wrong[:10]} are not str (e.g. "
                f"{type(texts[wrong[0]]).__name__}); decode token ids to text first"
            )
    if len(prompts) != len(completions):
        raise RewardError(
            f"{name}: got {len(prompts)} prompts but {len(completions)} completions; "
            "pass one prompt per completion"
        )
    if references is None:
        if need_references:
            raise RewardError(f"{name} needs references: pass one list of reference texts per row")
        return None
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise RewardError(
            f"{name}: references must be a list with one list of str per row, got "
            f"{type(references).__name__}"
        )
    if len(references) != len(completions):
        raise RewardError(
            f"{name}: got {len(references)} reference lists for {len(completions)} completions; "
            "pass one list of references per row"
        )
    rows: list[list[str]] = []
    for i, refs in enumerate(references):
        refs_list = [refs] if isinstance(refs, str) else list(refs)
        if not all(isinstance(ref, str) for ref in refs_list):
            raise RewardError(f"{name}: references row {i} holds non-str items: {refs_list!r}")
        if need_references and not refs_list:
            raise RewardError(f"{name}: references row {i} is empty; every row needs at least one")
        rows.append(refs_list)
    return rows


def _texts(score_on: str, prompts: Sequence[str], completions: Sequence[str]) -> list[str]:
    if score_on == "completion":
        return list(completions)
    return [prompt + completion for prompt, completion in zip(prompts, completions, strict=True)]


def _check_score_on(name: str, score_on: str) -> str:
    return check_choice(score_on, _SCORE_ON, f"{name}: score_on", error=RewardError)


class _Reward:
    """Shared call path: validate the batch, score it in one pass, validate the scores.

    Takes TRL's keywords and ignores those it does not use (``completion_ids``, dataset
    columns, ``trainer_state``, ``log_extra``, ``log_metric``); ``references`` comes from
    the env, or in TRL from a dataset column of that name.
    """

    name: str = "reward"
    needs_references: bool = False

    @property
    def __name__(self) -> str:
        # TRL names a callable reward's logged metrics after its __name__.
        return self.name

    def __call__(
        self,
        prompts: Sequence[str],
        completions: Sequence[str],
        references: Sequence[Sequence[str]] | None = None,
        **unused: Any,
    ) -> list[float]:
        refs = _check_rows(
            self.name, prompts, completions, references, need_references=self.needs_references
        )
        if not completions:
            return []
        values = self._score(list(prompts), list(completions), refs)
        return check_rewards(values, len(completions), self.name).tolist()

    def _score(
        self, prompts: list[str], completions: list[str], references: list[list[str]] | None
    ) -> Sequence[float] | np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


# -- lexicon sentiment ----------------------------------------------------------------------


class LexiconSentimentReward(_Reward):
    """VADER sentiment of the text, mapped from compound [-1, 1] to (c + 1) / 2 in [0, 1].

    Needs no model or network, so the offline TinyReviews env uses it as its default; on
    IMDB it is a cheap stand-in for the DistilBERT classifier's P(positive).
    """

    name = "lexicon-sentiment"

    def __init__(self, score_on: str = "prompt+completion") -> None:
        self.score_on = _check_score_on(self.name, score_on)
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()

    def _score(
        self, prompts: list[str], completions: list[str], references: list[list[str]] | None
    ) -> np.ndarray:
        texts = _texts(self.score_on, prompts, completions)
        compound = np.array(
            [self._analyzer.polarity_scores(text)["compound"] for text in texts], dtype=np.float64
        )
        return (compound + 1.0) / 2.0


# -- learned classifier ---------------------------------------------------------------------


def _resolve_device(device: Any) -> Any:
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class SequenceClassifierReward(_Reward):
    """Softmax probability of one label of a sequence classifier (IMDB: P(positive)).

    ``model`` is a hub name, a local directory (both loaded through
    :func:`lfi_gym.envs.text.hub.load_pretrained`, so a missing model fails at once with a message
    naming the ``reward_model`` argument) or an already loaded ``PreTrainedModel``.
    ``tokenizer`` defaults to the model's own (same name or directory). ``label`` is a
    class index or a label name from ``config.id2label``. Rows are scored in batches of
    ``batch_size`` under ``torch.inference_mode``, truncated to ``max_length`` tokens.
    """

    name = "sequence-classifier"

    def __init__(
        self,
        model: Any = "lvwerra/distilbert-imdb",
        tokenizer: Any = None,
        label: int | str = 1,
        batch_size: int = 64,
        device: Any = "auto",
        max_length: int = 512,
        score_on: str = "prompt+completion",
        *,
        env_id: str | None = None,
    ) -> None:
        import torch
        from transformers import (
            AutoModelForSequenceClassification,
            AutoTokenizer,
            PreTrainedModel,
        )

        from lfi_gym.envs.text.hub import load_pretrained

        self.score_on = _check_score_on(self.name, score_on)
        self.batch_size = check_int_at_least(
            batch_size, 1, f"{self.name}: batch_size", error=RewardError
        )
        self.max_length = check_int_at_least(
            max_length, 2, f"{self.name}: max_length", error=RewardError
        )
        self.device = _resolve_device(device)
        if isinstance(model, (str, os.PathLike)):
            source = os.fspath(model)
            loaded = load_pretrained(
                AutoModelForSequenceClassification.from_pretrained,
                source,
                asset="reward model",
                argument="reward_model",
                env_id=env_id,
            )
        elif isinstance(model, PreTrainedModel):
            source, loaded = None, model
        else:
            raise RewardError(
                f"{self.name}: model must be a hub name, a local directory or a loaded "
                f"transformers PreTrainedModel, got {type(model).__name__}"
            )
        if tokenizer is None:
            if source is None:
                raise RewardError(
                    f"{self.name}: model is an already loaded model, so pass its tokenizer too "
                    "(tokenizer=AutoTokenizer.from_pretrained(...) or a directory)"
                )
            tokenizer = source
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = load_pretrained(
                AutoTokenizer.from_pretrained,
                os.fspath(tokenizer),
                asset="reward model tokenizer",
                argument="reward_model",
                env_id=env_id,
            )
        if not callable(tokenizer):
            raise RewardError(
                f"{self.name}: tokenizer must be a hub name, a directory or a loaded tokenizer, "
                f"got {type(tokenizer).__name__}"
            )
        if getattr(tokenizer, "pad_token", None) is None and getattr(tokenizer, "eos_token", None):
            # GPT-2 style classifiers have no pad token; batching needs one (masked anyway).
            tokenizer.pad_token = tokenizer.eos_token
            if getattr(loaded.config, "pad_token_id", None) is None:
                loaded.config.pad_token_id = tokenizer.pad_token_id
        self.tokenizer = tokenizer
        self.model = loaded.to(self.device).eval()
        self.label = self._label_index(label)
        self._torch = torch
        # Tokenizers may return inputs the model does not take (token_type_ids for DistilBERT).
        # Named parameters only: a forward(**kwargs) may pass them on to a layer that fails.
        parameters = inspect.signature(self.model.forward).parameters
        self._inputs = {"input_ids", "attention_mask"} | {
            name
            for name, parameter in parameters.items()
            if parameter.kind
            not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
        }

    def _label_index(self, label: int | str) -> int:
        config = self.model.config
        num_labels = int(getattr(config, "num_labels", 0))
        id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            if not 0 <= int(label) < num_labels:
                raise RewardError(
                    f"{self.name}: label index {label} is out of range for a model with "
                    f"{num_labels} labels {id2label}; pass an index in [0, {num_labels - 1}] or a "
                    "label name"
                )
            return int(label)
        if isinstance(label, str):
            for index, text in id2label.items():
                if text == label:
                    return index
            folded = [index for index, text in id2label.items() if text.lower() == label.lower()]
            if len(folded) == 1:
                return folded[0]
            raise RewardError(
                f"{self.name}: label {label!r} is not one of the model's labels "
                f"{sorted(id2label.values())} (config.id2label); pass one of them or an index"
            )
        raise RewardError(f"{self.name}: label must be an int index or a str name, got {label!r}")

    def _score(
        self, prompts: list[str], completions: list[str], references: list[list[str]] | None
    ) -> np.ndarray:
        torch = self._torch
        texts = _texts(self.score_on, prompts, completions)
        scores = np.empty(len(texts), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                chunk = texts[start : start + self.batch_size]
                encoded = self.tokenizer(
                    chunk,
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                inputs = {
                    key: value.to(self.device)
                    for key, value in encoded.items()
                    if key in self._inputs
                }
                logits = self.model(**inputs).logits.float()
                probabilities = torch.softmax(logits, dim=-1)[:, self.label]
                scores[start : start + len(chunk)] = probabilities.cpu().numpy()
        return scores


# -- reference-based metrics ----------------------------------------------------------------


class CIDErDReward(_Reward):
    """CIDEr-D of the completion against the row's references (see :mod:`lfi_gym.envs.text.cider`).

    ``corpus_references`` (one reference list per example of the split) fixes the
    document frequencies, so that a row's reward does not depend on its batch mates; the
    env passes its whole split. Without it, frequencies come from the call's references,
    as the COCO evaluation does over a test set (and a one-row call then scores 0).
    """

    name = "cider-d"
    needs_references = True

    def __init__(
        self,
        corpus_references: Iterable[Sequence[str]] | None = None,
        n: int = 4,
        sigma: float = 6.0,
        tokenize: Tokenizer = coco_tokenize,
    ) -> None:
        self.n = check_int_at_least(n, 1, f"{self.name}: n", error=RewardError)
        self.sigma = check_positive_float(sigma, f"{self.name}: sigma", error=RewardError)
        self.tokenize = tokenize
        self.document_frequency: DocumentFrequency | None = None
        if corpus_references is not None:
            if isinstance(corpus_references, str):
                raise RewardError(
                    f"{self.name}: corpus_references must be a list of reference lists, not a str"
                )
            self.document_frequency = DocumentFrequency.from_reference_sets(
                corpus_references, n=n, tokenize=tokenize
            )
            if self.document_frequency.num_documents < 2:
                warnings.warn(
                    f"{self.name}: corpus_references has "
                    f"{self.document_frequency.num_documents} reference set(s); with fewer "
                    "than 2 every idf is 0 and every CIDEr-D score is 0",
                    stacklevel=2,
                )

    def _score(
        self, prompts: list[str], completions: list[str], references: list[list[str]] | None
    ) -> np.ndarray:
        assert references is not None
        return cider_d(
            completions,
            references,
            n=self.n,
            sigma=self.sigma,
            document_frequency=self.document_frequency,
            tokenize=self.tokenize,
        )


class BLEUReward(_Reward):
    """sacrebleu sentence BLEU (exp smoothing, effective order) / 100, in [0, 1]."""

    name = "bleu"
    needs_references = True

    def __init__(self) -> None:
        from sacrebleu.metrics import BLEU

        # The settings of sacrebleu.sentence_bleu, built once instead of once per row.
        self._bleu = BLEU(effective_order=True)

    def _score(
        self, prompts: list[str], completions: list[str], references: list[list[str]] | None
    ) -> np.ndarray:
        assert references is not None
        return np.array(
            [
                self._bleu.sentence_score(completion, refs).score / 100.0
                for completion, refs in zip(completions, references, strict=True)
            ],
            dtype=np.float64,
        )


# -- SPICE / SPIDEr -------------------------------------------------------------------------

_CORENLP_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")


def _spice_dir() -> Path | None:
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "spice"


def spice_unavailable_reason() -> str | None:
    """Why SPICE cannot run here, or None when it can."""
    spice_dir = _spice_dir()
    if spice_dir is None:
        return "pycocoevalcap is not installed (pip install pycocoevalcap)"
    if shutil.which("java") is None:
        return "no `java` binary on PATH (SPICE is a Java program; install a JRE >= 8)"
    if not (spice_dir / "spice-1.0.jar").is_file():
        return f"{spice_dir / 'spice-1.0.jar'} is missing (reinstall pycocoevalcap)"
    missing = [jar for jar in _CORENLP_JARS if not (spice_dir / "lib" / jar).is_file()]
    if missing:
        return (
            f"the Stanford CoreNLP jars {missing} are not in {spice_dir / 'lib'}; pycocoevalcap "
            "downloads them on first use, which needs network access (run "
            "`python -c 'from pycocoevalcap.spice.spice import Spice; Spice()'` once online)"
        )
    return None


def spice_available() -> bool:
    """Whether SPICE can run: pycocoevalcap, a ``java`` binary and the CoreNLP jars."""
    return spice_unavailable_reason() is None


def _spice_scores(
    completions: list[str], references: list[list[str]], cache_dir: Path, java: str
) -> np.ndarray:
    """SPICE F-score per row from one run of the SPICE jar over the whole batch."""
    spice_dir = _spice_dir()
    assert spice_dir is not None
    cache_dir.mkdir(parents=True, exist_ok=True)
    rows = [
        {"image_id": i, "test": completion, "refs": refs}
        for i, (completion, refs) in enumerate(zip(completions, references, strict=True))
    ]
    with tempfile.TemporaryDirectory(prefix="lfi-spice-") as work:
        in_file, out_file = Path(work) / "in.json", Path(work) / "out.json"
        in_file.write_text(json.dumps(rows))
        command = [java, "-jar", "-Xmx8G", "spice-1.0.jar", str(in_file)]
        command += ["-cache", str(cache_dir), "-out", str(out_file), "-subset", "-silent"]
        try:
            subprocess.run(command, cwd=spice_dir, check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as error:
            raise RuntimeError(
                f"SPICE failed (exit {error.returncode}): {error.stderr.strip()[-2000:]}"
            ) from error
        results = json.loads(out_file.read_text())
    by_id = {int(item["image_id"]): item["scores"]["All"]["f"] for item in results}
    return np.array([float(by_id[i]) for i in range(len(rows))], dtype=np.float64)


class SpiderReward(_Reward):
    """SPIDEr (Liu et al. 2017): ``cider_weight * CIDEr-D + spice_weight * SPICE``.

    The paper's weights are 0.5 / 0.5. SPICE needs pycocoevalcap, a ``java`` binary and the
    Stanford CoreNLP jars; without them construction raises SpiceUnavailableError saying
    which is missing, and ``"cider-d"`` is the reward to use instead.
    """

    name = "spider"
    needs_references = True

    def __init__(
        self,
        corpus_references: Iterable[Sequence[str]] | None = None,
        n: int = 4,
        sigma: float = 6.0,
        cider_weight: float = 0.5,
        spice_weight: float = 0.5,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        reason = spice_unavailable_reason()
        if reason is not None:
            raise SpiceUnavailableError(
                f"{self.name}: SPICE cannot run on this machine: {reason}. Use reward='cider-d' "
                "(CIDEr-D alone, pure Python) instead."
            )
        self._cider = CIDErDReward(corpus_references, n=n, sigma=sigma)
        self.cider_weight = float(cider_weight)
        self.spice_weight = float(spice_weight)
        default_cache = Path.home() / ".cache" / "lfi-gym" / "spice"
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache
        self._java = shutil.which("java") or "java"

    def _score(
        self, prompts: list[str], completions: list[str], references: list[list[str]] | None
    ) -> np.ndarray:
        assert references is not None
        cider = self._cider._score(prompts, completions, references)
        spice = _spice_scores(completions, references, self.cache_dir, self._java)
        return self.cider_weight * cider + self.spice_weight * spice


# -- registry -------------------------------------------------------------------------------

#: Reward name -> factory(**kwargs) returning a RewardFunction.
REWARDS: dict[str, Callable[..., RewardFunction]] = {}


def register_reward(name: str, factory: Callable[..., RewardFunction]) -> None:
    """Make ``make_reward(name, **kwargs)`` build ``factory(**kwargs)``; names are unique."""
    if not isinstance(name, str) or not name:
        raise RewardError(f"a reward name must be a non-empty str, got {name!r}")
    if not callable(factory):
        raise RewardError(f"the factory for reward {name!r} must be callable, got {factory!r}")
    if name in REWARDS:
        raise RewardError(
            f"a reward named {name!r} is already registered ({REWARDS[name]!r}); pick another name"
        )
    REWARDS[name] = factory


def make_reward(spec: str | RewardFunction, **kwargs: Any) -> RewardFunction:
    """A reward function from a registered name (built with ``kwargs``) or a callable as is."""
    if isinstance(spec, str):
        if spec not in REWARDS:
            raise RewardError(
                f"unknown reward {spec!r}; registered rewards are {sorted(REWARDS)}, or pass a "
                "callable reward(completions, **kwargs) -> list[float] (TRL's contract)"
            )
        return REWARDS[spec](**kwargs)
    if callable(spec):
        if kwargs:
            raise RewardError(
                f"reward options {sorted(kwargs)} only apply to a registered reward name; "
                f"configure the callable {reward_name(spec)!r} yourself"
            )
        return spec
    raise RewardError(
        f"reward must be a registered name {sorted(REWARDS)} or a callable "
        f"reward(completions, **kwargs) -> list[float] (TRL's contract), got "
        f"{type(spec).__name__}"
    )


def reward_name(fn: Any) -> str:
    """A readable name for logs: the ``name`` attribute, else the function or class name."""
    name = getattr(fn, "name", None)
    if isinstance(name, str) and name:
        return name
    inner = getattr(fn, "func", None)  # functools.partial
    if inner is not None and inner is not fn:
        return reward_name(inner)
    return getattr(fn, "__name__", None) or type(fn).__name__


def reward_keywords(fn: Any, offered: Sequence[str]) -> frozenset[str] | None:
    """Which of the ``offered`` keywords to pass to reward function ``fn``.

    None (pass them all) when ``fn`` takes ``**kwargs`` or its signature cannot be read;
    otherwise the offered keywords it names, so that ``def reward(prompts, completions,
    references)`` works as well as TRL's ``def reward(completions, **kwargs)``. A
    RewardError naming the offered keywords when ``fn`` requires a parameter that is not
    one of them (or a positional-only one), or takes none of them.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins: pass every keyword, the call will tell
        return None
    hint = (
        f"rewards are called with the keywords {', '.join(f'{k}=' for k in offered)} "
        "(TRL's reward-function contract); name the parameters you use after them and take "
        "**kwargs for the rest, e.g. def reward(completions, **kwargs)"
    )
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = list(signature.parameters.values())
    required = [
        p.name
        for p in parameters
        if p.default is p.empty
        and (p.kind is p.POSITIONAL_ONLY or (p.kind in named and p.name not in offered))
    ]
    if required:
        raise RewardError(
            f"reward function {reward_name(fn)!r} requires the parameters {required}, which are "
            f"not passed: {hint}"
        )
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    accepted = frozenset(p.name for p in parameters if p.kind in named and p.name in offered)
    if not accepted:
        raise RewardError(f"reward function {reward_name(fn)!r} takes none of the keywords: {hint}")
    return accepted


for _name, _factory in (
    (LexiconSentimentReward.name, LexiconSentimentReward),
    (SequenceClassifierReward.name, SequenceClassifierReward),
    (CIDErDReward.name, CIDErDReward),
    (BLEUReward.name, BLEUReward),
    (SpiderReward.name, SpiderReward),
):
    register_reward(_name, _factory)
del _name, _factory
