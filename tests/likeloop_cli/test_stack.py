"""The bundled servers' start: ports chosen apart, and a SeaweedFS start that loses a port to
another process between choosing and binding it starts again on others."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest

from likeloop_cli import stack


def test_free_ports_are_different_and_clear_of_each_others_grpc_twins() -> None:
    for _ in range(20):
        ports = stack.free_ports(4, with_grpc=True)
        twins = {p + 10000 for p in ports}
        assert len(set(ports)) == 4
        assert not twins & set(ports)


def test_weed_starts_again_on_other_ports_when_one_is_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = stack.free_port(with_grpc=True)  # a port weed could use, then taken
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", port))
    taken.listen()
    real = stack.free_ports
    calls: list[list[int]] = []

    def first_with_a_taken_port(n: int, with_grpc: bool = False) -> list[int]:
        ports = real(n, with_grpc)
        if not calls:
            ports[2] = port  # the volume server's port: weed exits at start
        calls.append(ports)
        return ports

    monkeypatch.setattr(stack, "free_ports", first_with_a_taken_port)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "likeloop-local")  # as the test session has it
    try:
        server = stack.start_weed(tmp_path / "weed")
        try:
            with urllib.request.urlopen(server.url + "/", timeout=5) as resp:
                assert resp.status == 200
            assert len(calls) == 2
            assert "address already in use" in (tmp_path / "weed" / "weed.log").read_text(errors="replace")
        finally:
            server.stop(grace=1)
    finally:
        taken.close()


def test_weed_checks_no_credentials_when_the_caller_has_aws_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A real AWS key in the shell of `likeloop up` does not become the bundled store's only identity."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALKEYOFTHEUSER")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "real-secret")
    server = stack.start_weed(tmp_path / "weed")
    try:
        with urllib.request.urlopen(server.url + "/", timeout=5) as resp:  # anonymous
            assert resp.status == 200
        import boto3

        other = boto3.client(
            "s3", endpoint_url=server.url, aws_access_key_id="someone-else", aws_secret_access_key="x",
            region_name="us-east-1",
        )  # fmt: skip
        other.create_bucket(Bucket="any")
        other.put_object(Bucket="any", Key="k", Body=b"v")
        assert other.get_object(Bucket="any", Key="k")["Body"].read() == b"v"
    finally:
        server.stop(grace=1)


def test_a_given_s3_port_that_is_taken_is_an_error_naming_it(tmp_path: Path) -> None:
    port = stack.free_port(with_grpc=True)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        with pytest.raises(stack.StackError, match="address already in use|did not answer"):
            stack.start_weed(tmp_path / "weed", s3_port=port)
