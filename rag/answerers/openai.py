"""A ChatModel behind any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, a llama.cpp server), streamed,
with its failures turned into LLMErrors that name the endpoint; the key is read by the client, never shown."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from rag.answerers.base import OnText
from rag.answerers.llm import STOP, Message
from rag.config import Settings
from rag.errors import LLMBadResponse, LLMError, LLMRateLimited, LLMServerError, LLMTimeout, LLMUnavailable
from rag.types import Usage

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam


class OpenAIChat:
    """Chat completions at OPENAI_BASE_URL (or OpenAI's API) with OPENAI_API_KEY, model RAG_LLM_MODEL."""

    name = "openai"

    def __init__(self, settings: Settings) -> None:
        import openai

        self.settings = settings
        self.model = settings.llm_model
        self.context = settings.llm_context
        self.max_tokens = settings.llm_max_tokens
        self.retries = settings.llm_retries
        self.passage_tokens: int | None = None  # a hosted model reads whatever fits its context
        # The client's own retries cover connection errors, 408/409/429 (honouring Retry-After) and 5xx before
        # a reply starts; a stream cut mid-way, or an empty reply, is retried by the answerer.
        self._client = openai.OpenAI(
            api_key=os.environ.get("OPENAI_API_KEY") or "unused",
            max_retries=settings.llm_retries,
            timeout=settings.llm_timeout,
        )
        self.endpoint = str(self._client.base_url).rstrip("/")

    def _encoding(self):  # type: ignore[no-untyped-def]
        from rag.chunking import tiktoken_encoding

        return tiktoken_encoding(self.model)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of the messages by tiktoken (the model's own encoding where tiktoken knows it), with a few
        tokens of framing per message."""
        encoding = self._encoding()
        return sum(len(encoding.encode(m["content"])) + 4 for m in messages) + 3

    def stream(self, messages: Sequence[Message], on_text: OnText | None) -> tuple[str, Usage | None]:
        """The reply, streamed; usage as the endpoint reports it, or counted with tiktoken."""
        import httpx
        import openai

        pieces: list[str] = []
        usage: Usage | None = None
        try:
            stream = self._client.chat.completions.create(
                model=self.model,
                messages=cast("list[ChatCompletionMessageParam]", list(messages)),
                temperature=0,
                max_tokens=self.max_tokens,
                stop=STOP,
                stream=True,
                stream_options={"include_usage": True},
            )
            for chunk in stream:
                if chunk.usage is not None:
                    usage = Usage(
                        prompt_tokens=chunk.usage.prompt_tokens, completion_tokens=chunk.usage.completion_tokens
                    )
                for choice in chunk.choices:
                    delta = choice.delta.content if choice.delta else None
                    if delta:
                        pieces.append(delta)
                        if on_text is not None:
                            on_text(delta)
        except openai.APITimeoutError as exc:
            raise LLMTimeout(
                self.endpoint,
                f"no answer within {self.settings.llm_timeout:g} s; raise RAG_LLM_TIMEOUT or check the server",
            ) from exc
        except openai.APIConnectionError as exc:
            if pieces:  # the stream broke off after it had started
                raise LLMBadResponse(self.endpoint, "the reply stream was cut off") from exc
            raise LLMUnavailable(
                self.endpoint, "cannot connect; check OPENAI_BASE_URL and that the server runs"
            ) from exc
        except openai.RateLimitError as exc:
            raise LLMRateLimited(
                self.endpoint, f"rate limited (HTTP 429) after {self.retries} retries; wait and retry"
            ) from exc
        except openai.AuthenticationError as exc:
            raise LLMError(self.endpoint, "the API key was refused (HTTP 401); check OPENAI_API_KEY") from exc
        except openai.NotFoundError as exc:
            raise LLMError(
                self.endpoint, f"model {self.model!r} or route not found (HTTP 404); check RAG_LLM_MODEL"
            ) from exc
        except openai.APIStatusError as exc:
            raise LLMServerError(self.endpoint, f"HTTP {exc.status_code} after {self.retries} retries") from exc
        except (openai.APIResponseValidationError, ValueError) as exc:
            raise LLMBadResponse(self.endpoint, "the reply was not valid chat-completion JSON") from exc
        except openai.APIError as exc:  # an error event inside the stream, or a broken-off stream
            raise LLMBadResponse(self.endpoint, f"the reply stream failed ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:  # the connection dropped while the stream was being read
            raise LLMBadResponse(self.endpoint, "the reply stream was cut off") from exc
        text = "".join(pieces).strip()
        if usage is None:
            encoding = self._encoding()
            usage = Usage(
                prompt_tokens=self.count_tokens(messages), completion_tokens=len(encoding.encode(text)), counted=True
            )
        return text, usage
