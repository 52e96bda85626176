"""pytest plugin for scripts/client_suites.py: hands aio-pika's and aiormq's own test suites the broker
client_suites.py started, where they would start one in Docker ("mosquito/aiormq-rabbitmq").

Loaded with `-p client_suite_broker` from the suite's own folder, before the suite's conftest is imported:
aio-pika's conftest then runs unchanged and only the container it asks for is ours; aiormq 7.2.4's sdist
ships a conftest without the broker fixtures, so they are defined here. The ports come from
CLIENT_SUITE_AMQP_PORT and CLIENT_SUITE_AMQPS_PORT.
"""

from __future__ import annotations

import os

import pytest
from yarl import URL

from tests import docker_client  # the suite's own module: its folder is the current directory

_PORTS = {
    "5672/tcp": int(os.environ["CLIENT_SUITE_AMQP_PORT"]),
    "5671/tcp": int(os.environ["CLIENT_SUITE_AMQPS_PORT"]),
}


def _available() -> docker_client.DockerHostInfo:
    return docker_client.DockerHostInfo(is_tcp=True, host="127.0.0.1", port=0)


def _ours(ports: list[str]) -> docker_client.ContainerInfo:
    return docker_client.ContainerInfo(
        id="client_suites", ports={port: _PORTS[port] for port in ports}, host="127.0.0.1"
    )


def _run(self, image: str, ports: list[str], environment: dict[str, str] | None = None) -> docker_client.ContainerInfo:  # type: ignore[no-untyped-def]
    return _ours(ports)


def _nothing_to_remove(self, container_id: str) -> None:  # type: ignore[no-untyped-def]
    """The broker is client_suites.py's to stop."""


docker_client.check_docker_available = _available
docker_client.DockerClient.run = _run  # type: ignore[method-assign]
docker_client.DockerClient.kill = _nothing_to_remove  # type: ignore[method-assign]
docker_client.DockerClient.remove = _nothing_to_remove  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def rabbitmq_container() -> docker_client.ContainerInfo:
    return _ours(list(_PORTS))


@pytest.fixture(scope="session")
def amqp_direct_url(rabbitmq_container: docker_client.ContainerInfo) -> URL:
    return URL.build(
        scheme="amqp", user="guest", password="guest", path="//", host="127.0.0.1", port=_PORTS["5672/tcp"]
    )
