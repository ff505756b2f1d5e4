"""lfi_gym.output: third-party noise silenced (and restored), lfi-gym's warnings kept, and
the progress of a sweep as plain lines off a terminal."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import gymnasium as gym
import pytest

from lfi_gym.agents.learners import make_learner
from lfi_gym.output import THIRD_PARTY_MODULES, ProgressReporter, quiet_third_party

TEXT = "TextGen-TinyReviews-v0"
REPO = Path(__file__).resolve().parents[1]


def _load_lm() -> None:
    env = gym.make(TEXT)
    make_learner("LMPolicy", env.observation_space, env.action_space, env=env)


def test_loading_the_lm_shows_no_weights_bar_while_quiet(capfd) -> None:
    _load_lm()  # transformers imported, its bars on: what a run prints by default
    assert "Loading weights" in "".join(capfd.readouterr())
    with quiet_third_party():
        _load_lm()
        out, err = capfd.readouterr()
        assert "Loading weights" not in out + err
    _load_lm()  # restored on leaving the block
    assert "Loading weights" in "".join(capfd.readouterr())


def test_quiet_before_transformers_is_imported_also_silences_it() -> None:
    # In a fresh process (a job worker): transformers is imported after quiet_third_party,
    # and gets its defaults back when the block ends.
    script = textwrap.dedent(
        f"""
        import sys
        import gymnasium as gym
        from lfi_gym.output import quiet_third_party
        from lfi_gym.agents.learners import make_learner

        def load():
            env = gym.make({TEXT!r})
            make_learner("LMPolicy", env.observation_space, env.action_space, env=env)

        assert "transformers" not in sys.modules
        with quiet_third_party():
            load()
            print("-- left the block --", file=sys.stderr, flush=True)
        load()
        """
    )
    quiet_vars = ("TRANSFORMERS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS")
    env = {k: v for k, v in os.environ.items() if k not in quiet_vars}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    quiet, after = result.stderr.split("-- left the block --")
    assert "Loading weights" not in quiet + result.stdout
    assert "Loading weights" in after


def _third_party_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A module outside lfi-gym whose function raises a FutureWarning, as libraries do."""
    (tmp_path / "transformers_like.py").write_text(
        "import warnings\n\n"
        "def old_api():\n"
        "    warnings.warn('old_api is deprecated', FutureWarning)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "transformers_like", raising=False)
    import transformers_like

    return transformers_like


def _ours(category: type[Warning]) -> None:
    warnings.warn_explicit(
        "raised by lfi-gym", category, "bc.py", 1, module="lfi_gym.agents.bc", registry={}
    )


def test_third_party_warnings_are_silenced_and_ours_still_show(tmp_path, monkeypatch) -> None:
    library = _third_party_module(tmp_path, monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_third_party():
            library.old_api()
            warnings.warn_explicit(
                "a torch notice", UserWarning, "x.py", 1, module="torch.nn.x", registry={}
            )
            _ours(FutureWarning)
            _ours(UserWarning)
            inside = [(w.category, str(w.message)) for w in caught]
        library.old_api()  # the filters are restored on leaving the block
    assert inside == [(FutureWarning, "raised by lfi-gym"), (UserWarning, "raised by lfi-gym")]
    assert [str(w.message) for w in caught[len(inside) :]] == ["old_api is deprecated"]


def test_the_module_pattern_spares_only_lfi_gym_and_main() -> None:
    import re

    pattern = re.compile(THIRD_PARTY_MODULES)
    for third_party in ("transformers.modeling_utils", "torch", "lfi_gym_plugin", "main"):
        assert pattern.match(third_party), third_party
    for ours in ("lfi_gym", "lfi_gym.agents.bc", "__main__"):
        assert not pattern.match(ours), ours


def test_quiet_third_party_is_idempotent_and_restores_the_hub_bars() -> None:
    from huggingface_hub.utils import are_progress_bars_disabled

    before = list(warnings.filters)
    assert not are_progress_bars_disabled()
    with quiet_third_party(), quiet_third_party():
        added = [f for f in warnings.filters if f not in before]
        assert len(added) == 4  # one per category, not one per call
        assert are_progress_bars_disabled()
    assert warnings.filters == before
    assert not are_progress_bars_disabled()


# -- progress -------------------------------------------------------------------------------


def test_progress_off_a_terminal_is_one_flushed_line_per_finished_job() -> None:
    stream = io.StringIO()
    with ProgressReporter(12, stream=stream) as progress:
        progress.started("Control-CartPole-v0 bc seed 0 (300 labels)")
        progress.started("Control-CartPole-v0 dagger seed 0 (300 labels)")
        assert stream.getvalue() == ""  # starting prints nothing off a terminal
        progress.finished("Control-CartPole-v0 dagger seed 0 (300 labels)", 12.345)
        progress.finished("Control-CartPole-v0 bc seed 0 (300 labels)", 4.2)
    assert stream.getvalue().splitlines() == [
        "[ 1/12] Control-CartPole-v0 dagger seed 0 (300 labels) 12.3 s",
        "[ 2/12] Control-CartPole-v0 bc seed 0 (300 labels) 4.2 s",
    ]


def test_disabled_progress_prints_nothing() -> None:
    stream = io.StringIO()
    with ProgressReporter(2, enabled=False, stream=stream) as progress:
        progress.started("a")
        progress.finished("a", 1.0)
    assert stream.getvalue() == ""


def test_progress_on_a_terminal_is_a_live_bar_not_lines() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    with ProgressReporter(2, stream=stream) as progress:
        progress.started("Rank-Synthetic-v0 bc seed 1 (250 labels)")
        progress.finished("Rank-Synthetic-v0 bc seed 1 (250 labels)", 1.0)
        progress.started("Rank-Synthetic-v0 dagger seed 1 (250 labels)")
        progress.finished("Rank-Synthetic-v0 dagger seed 1 (250 labels)", 1.0)
    shown = stream.getvalue()
    assert "2/2" in shown and "\x1b[" in shown  # rendered with terminal control codes
    assert "[1/2]" not in shown and "1.0 s" not in shown


@pytest.mark.parametrize("total", [-1, 2.5, True, "3"])
def test_progress_total_must_be_a_job_count(total) -> None:
    with pytest.raises(ValueError, match="total must be a number of jobs"):
        ProgressReporter(total, stream=io.StringIO())
