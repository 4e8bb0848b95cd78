"""What can stop a simulated call before it starts; the CLI turns these into exit status 2."""

from __future__ import annotations


class SimulatorError(Exception):
    """The simulated call could not be run."""


class GatewayUnreachable(SimulatorError):
    """No TCP connection to the gateway (AudioSocket or FastAGI)."""
