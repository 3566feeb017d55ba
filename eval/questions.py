"""Question files (JSONL) → Questions, and their gold references → paper ids."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rag import Paper, RagError

REQUIRED = ("id", "question", "type", "gold", "answer", "key_facts")
GOLD_KEYS = ("paper_id", "title", "source_file", "ordinal", "abstract_prefix")


class QuestionFileError(RagError):
    """A question file that cannot be used; names the file, line and field."""


@dataclass(frozen=True)
class Question:
    """One evaluation question; `extra` keeps any further fields of its line."""

    id: str
    question: str
    type: str
    gold: list[dict[str, object]]
    answer: str
    key_facts: list[str]
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def answerable(self) -> bool:
        """Whether the collection holds an answer (gold is not empty)."""
        return bool(self.gold)


def load_questions(path: Path) -> list[Question]:
    """The questions of a JSONL file; a malformed line is an error naming the file, line and field."""
    if not path.is_file():
        raise QuestionFileError(f"{path}: no such question file; pass --questions FILE (e.g. eval/questions.jsonl)")
    questions: list[Question] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QuestionFileError(f"{where}: not JSON ({exc.msg}); one JSON object per line") from exc
        if not isinstance(row, dict):
            raise QuestionFileError(f"{where}: expected a JSON object, got {type(row).__name__}")
        missing = [key for key in REQUIRED if key not in row]
        if missing:
            raise QuestionFileError(f"{where}: missing field {', '.join(missing)}")
        if not isinstance(row["gold"], list) or not all(isinstance(g, dict) for g in row["gold"]):
            raise QuestionFileError(f"{where}: gold must be a list of objects with {', '.join(GOLD_KEYS)}")
        if not isinstance(row["key_facts"], list):
            raise QuestionFileError(f"{where}: key_facts must be a list of strings")
        qid = str(row["id"])
        if qid in seen:
            raise QuestionFileError(f"{where}: id {qid!r} is used twice; ids must be unique")
        seen.add(qid)
        questions.append(
            Question(
                id=qid,
                question=str(row["question"]),
                type=str(row["type"]),
                gold=row["gold"],
                answer=str(row["answer"]),
                key_facts=[str(f) for f in row["key_facts"]],
                extra={k: v for k, v in row.items() if k not in REQUIRED},
            )
        )
    if not questions:
        raise QuestionFileError(f"{path}: no questions in the file")
    return questions


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def _matches(reference: dict[str, object], paper: Paper) -> bool:
    """Whether every identifier the reference gives points at `paper`."""
    if "paper_id" in reference and reference["paper_id"] != paper.paper_id:
        return False
    if "title" in reference and _fold(str(reference["title"])) != _fold(paper.title or ""):
        return False
    if "source_file" in reference or "ordinal" in reference:
        where = (reference.get("source_file"), reference.get("ordinal"))
        if not any((s.file, s.position) == where for s in paper.sources):
            return False
    return "abstract_prefix" not in reference or _fold(paper.abstract).startswith(
        _fold(str(reference["abstract_prefix"]))
    )


def resolve_gold(questions: list[Question], papers: dict[str, Paper]) -> dict[str, set[str]]:
    """Each question's gold papers as paper ids; a reference matching no paper, or several, is an error."""
    resolved: dict[str, set[str]] = {}
    for question in questions:
        ids: set[str] = set()
        for given in question.gold:
            reference = {key: value for key, value in given.items() if value is not None}  # null: not given
            if not any(key in reference for key in GOLD_KEYS):
                raise QuestionFileError(
                    f"question {question.id}: gold {given} names no paper; use {', '.join(GOLD_KEYS)}"
                )
            found = {pid for pid, paper in papers.items() if _matches(reference, paper)}
            if not found:
                raise QuestionFileError(f"question {question.id}: gold {given} matches no stored paper")
            if len(found) > 1:
                raise QuestionFileError(
                    f"question {question.id}: gold {given} matches {len(found)} different papers; "
                    "add paper_id or source_file + ordinal"
                )
            ids |= found
        resolved[question.id] = ids
    return resolved
