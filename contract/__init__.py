"""The one wire contract shared by the gateway, the hub and the simulators.

No I/O lives here: topic grammar, versioned message models, the signed command envelope and its
verification, sans-IO device codecs, error types and golden vectors.
"""

from contract.errors import CommandRejected, ContractError, DozorError, MalformedMessage

PROTOCOL_VERSION = 1

__all__ = ["PROTOCOL_VERSION", "CommandRejected", "ContractError", "DozorError", "MalformedMessage"]
