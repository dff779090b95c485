"""AI model providers: model lists and chat completions, in OpenAI-compatible shapes.

An AI plugin registers an :class:`~corral_sdk.records.AIProviderRecord` whose factory is called
as ``factory(config)`` with the provider's settings (endpoint, API key, deployment...), an
instance of the record's ``config`` struct. Building it does no I/O. The structs below mirror
OpenAI's chat completions API, so Corral's ``/api/openai/v1/chat/completions`` encodes them as
they are; vendor-specific parameters travel in :attr:`ChatRequest.extra`.

Errors: an unknown model raises :class:`~corral_sdk.errors.NotFound`; an unreachable endpoint
raises :class:`~corral_sdk.errors.TransportError` ("Provider endpoint unreachable",
``retryable=True``); a refused API key raises :class:`~corral_sdk.errors.ProviderError` with
``reason="provider-auth-failed"``; rate limits ``reason="rate-limited"`` with ``retryable=True``;
a request the model cannot take (images to a text model) raises :class:`~corral_sdk.errors.Invalid`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from corral_sdk.features import AIFeature
from corral_sdk.providers._common import unsupported, unsupported_default, unsupported_stream

__all__ = [
    "AI_FEATURE_METHODS",
    "AIProvider",
    "AIProviderBase",
    "ChatChunk",
    "ChatCompletion",
    "ChatMessage",
    "ChatRequest",
    "Choice",
    "ChunkChoice",
    "ContentPart",
    "Delta",
    "Embedding",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "FunctionCall",
    "FunctionCallDelta",
    "FunctionDefinition",
    "ImagePart",
    "ImageUrl",
    "ModelInfo",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
]

Role = Literal["system", "developer", "user", "assistant", "tool"]


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A model the provider serves (an entry of ``GET /v1/models``)."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = ""
    display_name: str = ""
    context_window: int | None = None


class TextPart(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="text"):
    text: str


class ImageUrl(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    """An ``https:`` URL or a ``data:`` URL."""
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="image_url"):
    """An image in a user message (:attr:`~corral_sdk.features.AIFeature.VISION`)."""

    image_url: ImageUrl


ContentPart = TextPart | ImagePart


class FunctionCall(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    arguments: str
    """JSON text, as the model produced it."""


class ToolCall(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


class ChatMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One message of a conversation."""

    role: Role
    content: str | tuple[ContentPart, ...] | None = None
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] | None = None
    """Calls an assistant message asks for (:attr:`~corral_sdk.features.AIFeature.TOOLS`)."""
    tool_call_id: str | None = None
    """In a ``tool`` message: the call it answers."""
    reasoning_content: str | None = None
    """A reasoning model's thinking, where the provider returns it."""


class FunctionDefinition(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    description: str = ""
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    """A JSON Schema of the arguments."""


class Tool(msgspec.Struct, frozen=True, kw_only=True):
    function: FunctionDefinition
    type: Literal["function"] = "function"


class ChatRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A chat completion request, with the model id as the provider knows it."""

    model: str
    messages: tuple[ChatMessage, ...]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] | None = None
    tools: tuple[Tool, ...] | None = None
    tool_choice: str | dict[str, Any] | None = None
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    """Forwarded to models that support it, ignored (without error) by the others."""
    user: str | None = None
    stream: bool = False
    """Set by API clients; the kernel calls :meth:`AIProvider.stream_chat` when true, and
    providers otherwise ignore it."""
    extra: dict[str, Any] = msgspec.field(default_factory=dict)
    """Vendor parameters passed through unchanged."""


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Choice(msgspec.Struct, frozen=True, kw_only=True):
    message: ChatMessage
    index: int = 0
    finish_reason: str | None = None
    """``stop``, ``length``, ``tool_calls``, ``content_filter``."""


class ChatCompletion(msgspec.Struct, frozen=True, kw_only=True):
    """A complete answer (``object: chat.completion``)."""

    id: str
    model: str
    choices: tuple[Choice, ...]
    created: int = 0
    object: Literal["chat.completion"] = "chat.completion"
    usage: Usage | None = None


class FunctionCallDelta(msgspec.Struct, frozen=True, kw_only=True):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta | None = None


class Delta(msgspec.Struct, frozen=True, kw_only=True):
    """What a chunk adds to the message being streamed."""

    role: Role | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: tuple[ToolCallDelta, ...] | None = None


class ChunkChoice(msgspec.Struct, frozen=True, kw_only=True):
    delta: Delta
    index: int = 0
    finish_reason: str | None = None


class ChatChunk(msgspec.Struct, frozen=True, kw_only=True):
    """One piece of a streamed answer (``object: chat.completion.chunk``), sent as one SSE
    ``data:`` line by the API."""

    id: str
    model: str
    choices: tuple[ChunkChoice, ...]
    created: int = 0
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    usage: Usage | None = None


class EmbeddingRequest(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    input: tuple[str, ...]


class Embedding(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    embedding: tuple[float, ...]
    object: Literal["embedding"] = "embedding"


class EmbeddingResponse(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    data: tuple[Embedding, ...]
    object: Literal["list"] = "list"
    usage: Usage | None = None


@runtime_checkable
class AIProvider(Protocol):
    """What an AI plugin implements. See the module docstring for construction and errors.

    Methods in :data:`AI_FEATURE_METHODS` are needed only with their feature;
    :class:`AIProviderBase` gives "unsupported" defaults for them.
    """

    async def list_models(self) -> Sequence[ModelInfo]:
        """The models this provider serves now (from ``GET /v1/models`` where the endpoint
        has it, else from the settings)."""
        ...

    async def chat(self, request: ChatRequest) -> ChatCompletion:
        """Answer a chat completion request in one piece."""
        ...

    # --- AIFeature.STREAMING

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Answer a chat completion request as chunks, yielded as the model produces them; the
        last chunk has a ``finish_reason``. Errors before the first chunk are raised as for
        :meth:`chat`; a connection lost midway raises ``TransportError``."""
        ...

    # --- AIFeature.EMBEDDINGS

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """Embed each input text; every vector has the same length."""
        ...


AI_FEATURE_METHODS: Mapping[AIFeature, tuple[str, ...]] = MappingProxyType(
    {
        AIFeature.STREAMING: ("stream_chat",),
        AIFeature.TOOLS: (),
        AIFeature.EMBEDDINGS: ("embed",),
        AIFeature.VISION: (),
    }
)
"""The methods each :class:`~corral_sdk.features.AIFeature` needs; ``TOOLS`` and ``VISION`` are
shapes :meth:`AIProvider.chat` accepts (tool definitions, image parts)."""


class AIProviderBase:
    """Optional mixin: every feature method raises ``ProviderError(reason="unsupported")``."""

    @unsupported_default
    def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        return unsupported_stream(self, "stream_chat")

    @unsupported_default
    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        raise unsupported(self, "embed")
