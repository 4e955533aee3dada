"""Testing agents offline: recorded provider responses (cassettes), a scripted model, and a
switch that makes any real model request fail.

    from agnt5.testing import cassette, ScriptedModel, disable_network
"""

from agnt5._litellm import disable_network
from agnt5.testing.cassette import Cassette, Interaction, cassette
from agnt5.testing.scripted import ScriptedCall, ScriptedModel

use_cassette = cassette

__all__ = [
    "Cassette",
    "Interaction",
    "ScriptedCall",
    "ScriptedModel",
    "cassette",
    "disable_network",
    "use_cassette",
]
