"""A free TCP port on loopback, for the servers the tests start."""

import socket


def free_port(address: str = "127.0.0.1") -> int:
    """A port free on `address` (an IPv4 or IPv6 address, without brackets)."""
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as s:
        s.bind((address, 0))
        return s.getsockname()[1]
