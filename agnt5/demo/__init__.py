"""`agnt5 demo`: the main job — a support conversation with a handoff and tools, state in four
scopes, long-term memory, a long session pruned two ways, an export and the audit trail.

Offline by default: model and embedding responses are replayed from `cassettes/demo.json`
(authored by `scripts/author_demo_cassette.py`); `agnt5 demo --live` calls the real provider.
"""
