"""A fake OpenAI embeddings endpoint for memory tests: real wire format, deterministic vectors.

Vectors are hashed bags of words, so texts that share words have a higher cosine similarity,
which is enough to check that search ranks by meaning-like overlap.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import httpx

EMBEDDINGS_URL = "https://api.openai.com/v1/embeddings"
MODEL = "text-embedding-3-small"
DIM = 1536


def fake_vector(text: str, dim: int = DIM) -> list[float]:
    """A deterministic vector: one count per word, in a hashed bucket."""
    vector = [0.0] * dim
    for word in re.findall(r"\w+", text.lower()):
        bucket = int(hashlib.md5(word.encode()).hexdigest(), 16) % dim
        vector[bucket] += 1.0
    return vector


def embeddings_body(vectors: list[list[float]], model: str = MODEL) -> dict[str, Any]:
    """An OpenAI /v1/embeddings response body."""
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": 3 * len(vectors), "total_tokens": 3 * len(vectors)},
    }


class FakeEmbeddings:
    """A respx side effect recording every request's inputs and answering with `fake_vector`s.

    `transform` may rewrite the vectors (wrong sizes, NaN...) before they are sent.
    """

    def __init__(self, dim: int = DIM) -> None:
        self.dim = dim
        self.calls: list[list[str]] = []
        self.bodies: list[dict[str, Any]] = []
        self.transform: Callable[[list[list[float]]], list[list[float]]] | None = None

    @property
    def inputs(self) -> list[str]:
        return [text for call in self.calls for text in call]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        self.calls.append(list(inputs))
        self.bodies.append(body)
        dim = int(body.get("dimensions") or self.dim)
        vectors = [fake_vector(text, dim) for text in inputs]
        if self.transform is not None:
            vectors = self.transform(vectors)
        return httpx.Response(200, json=embeddings_body(vectors, body.get("model", MODEL)))
