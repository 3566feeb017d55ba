"""An evaluation run: ask every question (or read answers produced elsewhere), score each answer, aggregate.
Answers are cached per question and configuration, so an interrupted run resumes where it stopped."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.evaluation.judges import make_judge
from rag.evaluation.metrics import EvalAnswer, Scores, aggregate, score
from rag.evaluation.questions import Question, QuestionFileError, load_questions, resolve_gold
from rag.evaluation.rankings import rankings

import rag
from rag import Answer, Paper
from rag.citations import paper_header, parse_markers, split_answer
from rag.errors import WriteError

Progress = Callable[[int, int], None]


@dataclass
class Report:
    """The outcome of a run: configuration, aggregates overall and per question type, and every question's
    scores with its answer."""

    config: dict[str, object]
    overall: dict[str, float | int | None]
    by_type: dict[str, dict[str, float | int | None]]
    rows: list[Scores]
    answers: dict[str, dict[str, Any]]  # JSON, as the answers file holds it
    judge_check: dict[str, Any] | None = None  # JSON, as run_judge_check returns it
    notes: list[str] = field(default_factory=list)
    rankings: dict[str, Any] = field(default_factory=dict)  # JSON, as eval.rankings.rankings returns it

    def as_dict(self) -> dict[str, object]:
        return {
            "config": self.config,
            "overall": self.overall,
            "by_type": self.by_type,
            "questions": [{**row.as_dict(), "answer": self.answers.get(row.id)} for row in self.rows],
            "judge_check": self.judge_check,
            "notes": self.notes,
            "rankings": self.rankings,
        }


def _llama_build() -> str | None:
    """Where the loaded llama-cpp-python lives and the instruction sets it was built for."""
    try:
        import llama_cpp
    except ImportError:
        return None
    return f"{llama_cpp.__file__} {llama_cpp.llama_print_system_info().decode('utf-8', 'replace')}"


def _source_fingerprint() -> str:
    """Hash of the library's code and prompts: answers cached by older code are not reused."""
    from importlib import resources

    digest = hashlib.sha256()
    for path in sorted(Path(rag.__file__).resolve().parent.rglob("*.py")):
        digest.update(path.read_bytes())
    # The prompts as the package finds them, wherever the install put them.
    for item in sorted(resources.files("rag.prompts").iterdir(), key=lambda t: t.name):
        if item.name.endswith(".txt"):
            digest.update(item.read_bytes())
    return digest.hexdigest()[:16]


def from_answer(answer: Answer, papers: dict[str, Paper]) -> EvalAnswer:
    """An ask() Answer in scoring form: citations and retrieved passages with their papers' records."""

    def evidence(paper_id: str, text: str) -> str:
        paper = papers.get(paper_id)
        return f"{paper_header(paper)} {text}" if paper else text

    return EvalAnswer(
        id="",
        text=answer.text,
        abstained=answer.abstained,
        sentences=[(s.claim, s.markers) for s in answer.sentences] if not answer.abstained else [],
        citations={c.number: (evidence(c.paper_id, c.passage), c.paper_id) for c in answer.citations},
        retrieved=[p.paper_id for p in answer.passages],
        retrieved_evidence=[evidence(p.paper_id, p.read) for p in answer.passages],  # what the answerer read
        seconds=answer.seconds.get("total"),
        prompt_tokens=answer.usage.prompt_tokens if answer.usage else None,
        completion_tokens=answer.usage.completion_tokens if answer.usage else None,
    )


def load_answers(path: Path, papers: dict[str, Paper]) -> dict[str, EvalAnswer]:
    """Answers produced elsewhere (JSONL: id, answer, citations [number, passage, paper_id or title], abstained,
    optional retrieved [paper ids or titles]), in scoring form."""
    if not path.is_file():
        raise QuestionFileError(f"{path}: no such answers file")
    by_title = {" ".join((p.title or "").split()).casefold(): pid for pid, p in papers.items() if p.title}

    def paper_of(row: dict[str, object]) -> str | None:
        if row.get("paper_id") in papers:
            return str(row["paper_id"])
        return by_title.get(" ".join(str(row.get("title") or "").split()).casefold())

    out: dict[str, EvalAnswer] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text = str(row["answer"])
            citations = {}
            for cited in row.get("citations") or []:
                pid = paper_of(cited)
                passage = str(cited["passage"])
                citations[int(cited["number"])] = (
                    f"{paper_header(papers[pid])} {passage}" if pid else passage,
                    pid,
                )
            abstained = bool(row.get("abstained", False))
            retrieved = row.get("retrieved")
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise QuestionFileError(
                f"{path.name} line {number}: expected id, answer, citations [number, passage], abstained ({exc})"
            ) from exc
        sentences = [parse_markers(s) for s in split_answer(text)] if not abstained else []
        ranked = None
        if isinstance(retrieved, list):
            ranked = [pid for item in retrieved if (pid := paper_of({"paper_id": item, "title": item}))]
        out[str(row["id"])] = EvalAnswer(
            id=str(row["id"]),
            text=text,
            abstained=abstained,
            sentences=[(claim, markers) for claim, markers in sentences if claim],
            citations=citations,
            retrieved=ranked,
            retrieved_evidence=[],
            seconds=row.get("seconds"),
        )
    return out


def evaluate(
    questions_path: Path,
    *,
    settings: rag.Settings,
    backend: str | None = None,
    judge: str = "offline",
    answers_path: Path | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    split: str | None = None,
) -> Report:
    """Score every question of `questions_path` (those whose `split` field is `split`, when given): by asking the
    pipeline, or from `answers_path`."""
    questions = load_questions(questions_path)
    if split is not None:
        questions = [q for q in questions if q.extra.get("split") == split]
        if not questions:
            raise QuestionFileError(f'{questions_path.name}: no question has "split": "{split}"')
    pipe = rag.pipeline(settings)
    pipe.warm()  # hundreds of questions: the faster embedding is worth loading
    papers = {paper.paper_id: paper for paper in rag.list_papers(settings=settings)}
    if not papers:
        raise rag.StoreError(f"the store at {settings.home} is empty; run `rag ingest` first")
    gold = resolve_gold(questions, papers)
    chosen_backend = backend or settings.resolved_backend
    judge_impl = make_judge(judge, settings, pipe.embedder)
    config: dict[str, object] = {
        "questions": str(questions_path),
        "split": split,
        "answers": str(answers_path) if answers_path else None,
        "backend": None if answers_path else chosen_backend,
        "judge": judge,
        "llm_model": _model_of(settings, chosen_backend) if not answers_path else None,
        "embedding": settings.embedding,
        "code": _source_fingerprint(),
        "papers": len(papers),
        # The local model reranks by what its llama.cpp build reads fast (rag.answerers.local): a build for other
        # instructions answers differently.
        "llama_cpp": _llama_build() if not answers_path and "local" in (chosen_backend, settings.rerank) else None,
    }
    notes: list[str] = []
    external: dict[str, EvalAnswer] | None = None
    if answers_path is not None:
        external = load_answers(answers_path, papers)
        unknown = sorted(set(external) - {q.id for q in questions})
        if unknown:
            raise QuestionFileError(f"{answers_path.name}: answers for unknown question ids {', '.join(unknown[:5])}")
        missing = [q.id for q in questions if q.id not in external]
        if missing:
            notes.append(f"{len(missing)} questions have no answer in {answers_path.name} and were not scored")
        questions = [q for q in questions if q.id in external]
    cache = settings.home / "eval-cache" / hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    done = 0
    lock = threading.Lock()

    def one(question: Question) -> tuple[Scores, dict[str, object]]:
        nonlocal done
        if external is not None:
            answer = external[question.id]
            shown: dict[str, object] = {
                "text": answer.text,
                "citations": {n: c[0] for n, c in answer.citations.items()},
            }
        else:
            got = _cached_ask(pipe, question, chosen_backend, cache)
            answer = from_answer(got, papers)
            shown = {
                "text": got.text,
                "citations": [{"number": c.number, "title": c.title, "passage": c.passage} for c in got.citations],
                "unsupported": [s.text for s in got.unsupported],
            }
        scores = score(question.id, question.type, answer, gold[question.id], question.key_facts, judge_impl)
        with lock:
            done += 1
            if progress:
                progress(done, len(questions))
        return scores, shown

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(one, questions))
    rows = [scores for scores, _ in results]
    types = sorted({row.type for row in rows})
    return Report(
        config=config,
        overall=aggregate(rows),
        by_type={t: aggregate([r for r in rows if r.type == t]) for t in types},
        rows=rows,
        answers={scores.id: shown for scores, shown in results},
        notes=notes,
        rankings=rankings(pipe.retriever, questions, gold) if external is None else {},
    )


def _model_of(settings: rag.Settings, backend: str) -> str | None:
    """The model behind an LLM backend, so that answers of another model are never taken from the cache."""
    if backend == "openai":
        return settings.llm_model
    if backend == "local":
        return str(settings.local_model or "bundled")
    return None


def _cached_ask(pipe: rag.Pipeline, question: Question, backend: str, cache: Path) -> Answer:
    key = hashlib.sha256(question.question.encode()).hexdigest()[:12]
    path = cache / f"{question.id}-{key}.json"
    if path.exists():
        return Answer.model_validate_json(path.read_text(encoding="utf-8"))
    answer = pipe.ask(question.question, backend=backend)
    write_whole(path, answer.model_dump_json(), "the evaluation cache")
    return answer


def write_whole(path: Path, text: str, what: str) -> None:
    """Write `text` to `path` whole or not at all (a run killed or refused mid-write leaves no half file), with a
    failed write (a full disk) as one line naming the file."""
    partial = path.with_suffix(path.suffix + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise WriteError(
            f"cannot write {what} at {path}: {exc.strerror or exc}; free space (or fix the folder's permissions) "
            "and run the command again: what was written before is kept"
        ) from exc
