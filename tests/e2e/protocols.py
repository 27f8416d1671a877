"""Three ways to call the gateway, as the tests use them: native gRPC stubs, grpc-web frames, REST JSON."""

from __future__ import annotations

import struct
import urllib.parse
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import httpx
from google.protobuf.message import Message

from flowdock.auth.v1 import auth_pb2_grpc
from flowdock.storage.v1 import storage_pb2_grpc

M = TypeVar("M", bound=Message)
BIG = 64 * 1024 * 1024


def native_channel(host_port: str) -> grpc.Channel:
    return grpc.insecure_channel(
        host_port,
        options=[("grpc.max_send_message_length", BIG), ("grpc.max_receive_message_length", BIG)],
    )


@dataclass
class Native:
    channel: grpc.Channel

    @property
    def auth(self) -> auth_pb2_grpc.AuthServiceStub:
        return auth_pb2_grpc.AuthServiceStub(self.channel)

    @property
    def storage(self) -> storage_pb2_grpc.StorageServiceStub:
        return storage_pb2_grpc.StorageServiceStub(self.channel)


class GrpcWebError(Exception):
    def __init__(self, status: int, message: str, http_status: int) -> None:
        super().__init__(f"grpc-status {status}: {message}")
        self.status = status
        self.message = message
        self.http_status = http_status


def _frame(payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


def _parse_frames(body: bytes) -> tuple[list[bytes], dict[str, str]]:
    messages: list[bytes] = []
    trailers: dict[str, str] = {}
    pos = 0
    while pos + 5 <= len(body):
        flags, length = struct.unpack(">BI", body[pos : pos + 5])
        chunk = body[pos + 5 : pos + 5 + length]
        pos += 5 + length
        if flags & 0x80:
            for line in chunk.decode().split("\r\n"):
                if ":" in line:
                    k, v = line.split(":", 1)
                    trailers[k.strip().lower()] = v.strip()
        else:
            messages.append(chunk)
    return messages, trailers


class GrpcWeb:
    """grpc-web over HTTP/1.1 exactly as a browser sends it (binary mode), unary and server-streaming."""

    def __init__(self, base_url: str, token: str = "") -> None:
        self.base_url = base_url
        self.token = token

    def call(self, method: str, request: Message, response_type: type[M], *, stream: bool = False) -> Any:
        headers = {
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            "accept": "application/grpc-web+proto",
            "origin": "http://localhost:5173",
        }
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        resp = httpx.post(
            f"{self.base_url}/{method}", content=_frame(request.SerializeToString()), headers=headers, timeout=60
        )
        messages, trailers = _parse_frames(resp.content)
        status = trailers.get("grpc-status", resp.headers.get("grpc-status", "0"))
        if status != "0":
            message = urllib.parse.unquote(trailers.get("grpc-message", resp.headers.get("grpc-message", "")))
            raise GrpcWebError(int(status), message, resp.status_code)
        parsed = [response_type.FromString(m) for m in messages]
        return parsed if stream else parsed[0]
