"""The shared kernel: configuration, logging, errors, tokens, the gRPC server bootstrap and the database layer.

Every service imports it; it imports no service.
"""

__version__ = "0.1.0"
