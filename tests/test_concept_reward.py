"""The concept-to-text reward: coverage with inflections, n-gram fluency, their product,
checked against hand-computed values."""

from __future__ import annotations

import pytest

from lfi_gym.envs.text.concepts import (
    ConceptCoverageReward,
    NGramFluency,
    concept_coverage,
    concept_prompt,
    concepts_from_prompt,
    inflections,
    words,
)
from lfi_gym.envs.text.rewards import RewardError
from lfi_gym.envs.text.task import TextSample, TextTask

CORPUS = [
    "The plot was great.",
    "Greta Voss gives a brilliant performance in this thriller.",
    "The soundtrack is brilliant and the comedies are fun.",
]


def test_words_keep_punctuation_and_possessives_lower_case() -> None:
    assert words("Greta Voss's SOUNDTRACK, brilliant!") == [
        "greta", "voss's", "soundtrack", ",", "brilliant", "!",
    ]  # fmt: skip
    assert words("") == []
    with pytest.raises(TypeError, match="expected a str"):
        words(None)  # type: ignore[arg-type]


def test_inflections_cover_regular_forms_only() -> None:
    assert {"soundtrack", "soundtracks", "soundtrack's"} <= inflections("soundtrack")
    assert {"comedies", "comedied"} <= inflections("comedy")
    assert "scoring" in inflections("score")
    assert "sound" not in inflections("soundtrack")
    assert "soundtrackish" not in inflections("soundtrack")


@pytest.mark.parametrize(
    ("text", "concepts", "expected"),
    [
        ("The soundtracks were brilliant.", ["soundtrack", "brilliant"], 1.0),
        ("A thriller with a great plot.", ["thriller", "Greta Voss", "brilliant", "plot"], 0.5),
        ("Greta and Voss met.", ["Greta Voss"], 0.0),  # a name is its words in order
        ("Greta Voss's best film.", ["Greta Voss"], 1.0),
        ("Two horror films.", ["horror film"], 1.0),
        ("A horror story on film.", ["horror film"], 0.0),
        ("THE SILENT HARBOR", ["The Silent Harbor"], 1.0),
        ("", ["thriller"], 0.0),
    ],
)
def test_concept_coverage_by_hand(text: str, concepts: list[str], expected: float) -> None:
    assert concept_coverage(text, concepts) == expected


def test_concept_coverage_refuses_empty_or_bare_str_concepts() -> None:
    for bad in ([], "thriller"):
        with pytest.raises(RewardError, match="non-empty list of str"):
            concept_coverage("a thriller", bad)
    with pytest.raises(RewardError, match="has no words"):
        concept_coverage("a thriller", ["..."])


def test_fluency_is_the_fraction_of_seen_trigrams_by_hand() -> None:
    fluency = NGramFluency(["the plot was great ."], order=3)
    assert fluency("The plot was great.") == 1.0
    # <s> <s> the | <s> the plot | the plot was: seen; plot was dull | was dull . |
    # dull . </s>: not seen -> 3 / 6
    assert fluency("the plot was dull.") == pytest.approx(3 / 6)
    # Reordered words: only (<s>, <s>, the) survives of 5 trigrams.
    assert fluency("the was plot great") == pytest.approx(1 / 5)
    assert fluency("") == 0.0  # (<s>, <s>, </s>) is in no corpus text


def test_fluency_pads_each_sentence_and_an_unfinished_one_stays_open() -> None:
    fluency = NGramFluency(["the plot was great . it was fun ."], order=3)
    # Two sentences, each padded: 5 + 4 trigrams, all found in the corpus's sentences.
    assert fluency("It was fun. The plot was great.") == 1.0
    # "it was fun" without its period: (was fun </s>) was never seen; 3 of 4 found.
    assert fluency("it was fun") == pytest.approx(3 / 4)


def test_word_classes_judge_structure_and_match_phrases_first() -> None:
    classes = {"greta": "<first>", "ada": "<first>", "camera work": "<aspect>", "plot": "<aspect>"}
    plain = NGramFluency(["greta liked the plot ."], order=3)
    classed = NGramFluency(["greta liked the plot ."], order=3, word_classes=classes)
    # A name and an aspect the corpus never had in these slots.
    text = "Ada liked the camera work."
    # plain words: none of its 7 trigrams (<s> <s> ada, ..., work . </s>) is in the corpus
    assert plain(text) == 0.0
    assert classed(text) == 1.0  # <first> liked the <aspect> . -- the corpus's structure
    assert classed("Ada liked the camera.") < 1.0  # "camera" alone is not the phrase
    # The longest phrase wins: "horror film" is a genre, though "horror" alone is a mood.
    genres = {"western": "<genre>", "horror film": "<genre>", "horror": "<mood>"}
    assert NGramFluency(["a western ."], word_classes=genres)("A horror film.") == 1.0


def test_fluency_rule_all_is_a_grammar_check() -> None:
    fluency = NGramFluency(["the plot was great ."], rule="all")
    assert fluency("The plot was great.") == 1.0
    assert fluency("The plot was dull.") == 0.0  # 3 of 6 trigrams found: not all
    assert fluency("") == 0.0
    with pytest.raises(RewardError, match="rule must be one of 'fraction', 'all'"):
        NGramFluency(["the plot ."], rule="most")


def test_fluency_order_one_counts_known_words() -> None:
    fluency = NGramFluency(["the plot was great"], order=1)
    # unigrams: the, plot, xyz, </s> -> 3 of 4 known
    assert fluency("the plot xyz") == pytest.approx(3 / 4)


def test_fluency_refuses_an_empty_corpus_or_bad_order() -> None:
    for corpus in ([], ["", "  "]):
        with pytest.raises(RewardError, match="corpus has no words"):
            NGramFluency(corpus)
    with pytest.raises(RewardError, match="corpus must be a list of texts"):
        NGramFluency("the plot was great")
    with pytest.raises(RewardError, match="order"):
        NGramFluency(CORPUS, order=0)


def test_reward_is_coverage_times_fluency_by_hand() -> None:
    reward = ConceptCoverageReward(CORPUS)
    completions = [
        "The soundtrack is brilliant and the comedies are fun.",  # a corpus text: fluency 1
        "Greta Voss thriller soundtrack brilliant",  # every concept, listed
        "The plot was great.",  # fluent, no concept
    ]
    concepts = [["soundtrack", "comedy"], ["Greta Voss", "thriller", "soundtrack", "brilliant"]]
    concepts.append(["thriller", "plot"])
    values = reward(prompts=["p"] * 3, completions=completions, concepts=concepts)
    # Listed concepts: of (<s> <s> greta) (<s> greta voss) (greta voss thriller)
    # (voss thriller soundtrack) (thriller soundtrack brilliant) (soundtrack brilliant </s>)
    # only the first two occur in the corpus.
    assert values == pytest.approx([1.0, 2 / 6, 0.5])


def test_reward_reads_concepts_from_a_concept_prompt_when_the_column_has_none() -> None:
    reward = ConceptCoverageReward(CORPUS)
    prompt = concept_prompt(["plot", "thriller"])
    assert prompt == "write a review with: plot, thriller."
    assert concepts_from_prompt(prompt) == ("plot", "thriller")
    assert concepts_from_prompt("the film was") is None
    assert reward(prompts=[prompt], completions=["The plot was great."], concepts=[None]) == [0.5]
    assert reward(prompts=[prompt], completions=["The plot was great."]) == [0.5]
    with pytest.raises(RewardError, match="no concepts for the prompt 'the film was'"):
        reward(prompts=["the film was"], completions=["The plot was great."])


def test_reward_refuses_a_concepts_column_of_the_wrong_length() -> None:
    reward = ConceptCoverageReward(CORPUS)
    with pytest.raises(RewardError, match="one concept list per completion"):
        reward(prompts=["p", "p"], completions=["a", "b"], concepts=[["plot"]])


def test_a_task_passes_its_samples_concepts_to_the_reward() -> None:
    """TextSample.concepts becomes the task's ``concepts`` column, as label does."""
    from lfi_gym.envs.text.sources import load_tokenizer
    from lfi_gym.envs.text.tinyreviews import ASSET_DIR

    tokenizer = load_tokenizer(ASSET_DIR, env_id="test", argument="tokenizer", padding_side="left")
    samples = [
        TextSample(concept_prompt(["plot"]), ("The plot was great.",), concepts=("plot",)),
        TextSample(concept_prompt(["thriller"]), ("A thriller.",), concepts=("thriller",)),
    ]
    task = TextTask(
        name="concepts-test",
        tokenizer=tokenizer,
        samples=samples,
        reward_fn=ConceptCoverageReward(CORPUS),
        prompt_length=16,
        max_new_tokens=8,
    )
    assert task.columns == ("concepts",)
    columns = task.column_values([1, 0, -1])
    assert columns == {"concepts": [("thriller",), ("plot",), None]}
    scores = task.score(
        prompts=[s.prompt for s in samples],
        completions=["The plot was great.", "The plot was great."],
        completion_ids=[[1], [1]],
        references=[list(s.references) for s in samples],
        **task.column_values([0, 1]),
    )
    assert scores.tolist() == [1.0, 0.0]
