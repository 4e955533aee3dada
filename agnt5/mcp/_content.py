"""An MCP tool result as the text the model reads: text and structured content as they are,
other content (images, audio, resources) described in a line so nothing is dropped silently."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from agnt5.tools import ToolResult


def _size(data: str) -> str:
    try:
        return f"{len(base64.b64decode(data, validate=False))} bytes"
    except (binascii.Error, ValueError):
        return f"{len(data)} base64 characters"


def describe(block: Any) -> str:
    """One content block as text (duck-typed on the block's `type`, so any SDK version reads)."""
    kind = getattr(block, "type", None)
    if kind == "text":
        return str(block.text)
    if kind in ("image", "audio"):
        return f"[{kind} content: {block.mime_type}, {_size(block.data)}; not shown to the model]"
    if kind == "resource_link":
        mime = f", {block.mime_type}" if getattr(block, "mime_type", None) else ""
        return f"[resource link: {block.name} <{block.uri}>{mime}]"
    if kind == "resource":
        resource = block.resource
        text = getattr(resource, "text", None)
        if text is not None:
            return f"[resource <{resource.uri}>]\n{text}"
        mime = getattr(resource, "mime_type", None) or "binary"
        return f"[resource <{resource.uri}>: {mime}, {_size(getattr(resource, 'blob', ''))}; not shown]"
    return f"[{kind or type(block).__name__} content: not shown to the model]"


def to_tool_result(tool: str, result: Any) -> ToolResult:
    """A CallToolResult as a ToolResult. Text blocks are joined; structured content is used when the
    server sent no text (servers send a text copy of structured content, as the spec asks)."""
    parts = [describe(block) for block in result.content or ()]
    has_text = any(getattr(block, "type", None) == "text" for block in result.content or ())
    structured = getattr(result, "structured_content", None)
    if structured is not None and not has_text:
        parts.insert(0, json.dumps(structured, ensure_ascii=False, default=str))
    text = "\n".join(parts)
    if result.is_error:
        return ToolResult(f"Error: tool '{tool}' failed: {text or 'no details given'}", is_error=True)
    return ToolResult(text)
