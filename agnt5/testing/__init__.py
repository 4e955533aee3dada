"""Testing agents offline: recorded provider responses (cassettes), a scripted model, a model
computed by your function (FunctionModel), one that calls every tool (TestModel), and a switch
that makes any real model request fail.

    from agnt5.testing import cassette, ScriptedModel, FunctionModel, TestModel, disable_network
"""

from agnt5._litellm import disable_network
from agnt5.testing.cassette import Cassette, Interaction, cassette
from agnt5.testing.function_model import AgentInfo, FunctionModel, ModelRequest
from agnt5.testing.scripted import ScriptedCall, ScriptedModel
from agnt5.testing.test_model import TestModel

use_cassette = cassette

__all__ = [
    "AgentInfo",
    "Cassette",
    "FunctionModel",
    "Interaction",
    "ModelRequest",
    "ScriptedCall",
    "ScriptedModel",
    "TestModel",
    "cassette",
    "disable_network",
    "use_cassette",
]
