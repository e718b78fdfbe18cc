"""Raw HTTP for the local servers' tests: bytes in, (status, JSON body) out."""

from __future__ import annotations

import json
import socket


def raw(server, data: bytes) -> tuple[int, dict]:
    """Send raw bytes to ``server`` (bound, serving), half-close, read the answer: (status,
    JSON body or {})."""
    with socket.create_connection(server.server_address[:2], timeout=30) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {}
