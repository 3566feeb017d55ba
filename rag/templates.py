"""Prompt files (installed as the package rag.prompts) → checked string.Template objects, and the abstain
phrase shared by prompts, code and tests."""

from __future__ import annotations

import string
from functools import cache
from importlib import resources

from rag.errors import ConfigError

# The one sentence an answer consists of when the collection does not support an answer.
ABSTAIN_PHRASE = "The abstracts in this collection do not answer this question."
# The words that open a hedged answer: the passages are close to the question but may not state what it asks.
HEDGE_PHRASE = "The abstracts here may not state exactly this; the closest passages say:"
# The words that open the sentence listing the papers of an answer about several papers.
LEAD_PHRASE = "These papers bear on the question:"
# The words that open the sentence naming both papers when the ranking cannot tell which one the question means.
CLOSE_PHRASE = "Two papers fit the question:"
# The words that open the sentence naming the one paper a "which paper ...?" answer is about.
NAMED_PHRASE = "The paper is"

# Every template and the exact variables it must use: a missing or unknown variable is an error at load time.
TEMPLATES: dict[str, frozenset[str]] = {
    "answer_system": frozenset({"abstain_phrase"}),
    "answer_user": frozenset({"history", "passages", "question"}),
    "judge_claims": frozenset({"sentence"}),
    "judge_verify": frozenset({"evidence", "claim"}),
    "rerank": frozenset({"abstract"}),
}


@cache
def load(name: str) -> string.Template:
    """The template `prompts/<name>.txt`, checked against the variables it must use."""
    if name not in TEMPLATES:
        raise ConfigError(f"no prompt named {name!r}; known prompts: {', '.join(sorted(TEMPLATES))}")
    text = resources.files("rag.prompts").joinpath(f"{name}.txt").read_text(encoding="utf-8")
    return check(name, text, TEMPLATES[name])


def check(name: str, text: str, expected: frozenset[str]) -> string.Template:
    """`text` as a Template, if it uses exactly the `expected` variables."""
    template = string.Template(text)
    if not template.is_valid():
        raise ConfigError(f"prompt {name}: a '$' that starts no variable; write '$$' for a dollar sign")
    used = set(template.get_identifiers())
    if missing := expected - used:
        raise ConfigError(f"prompt {name}: does not use ${', $'.join(sorted(missing))}")
    if unknown := used - expected:
        raise ConfigError(f"prompt {name}: unknown variable ${', $'.join(sorted(unknown))}")
    return template


def render(name: str, **values: str) -> str:
    """The prompt `name` with its variables filled in."""
    return load(name).substitute(values)
