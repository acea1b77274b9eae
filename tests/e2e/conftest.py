"""The end-to-end suite's services: started once per session, killed in teardown."""
from __future__ import annotations

import pytest

from e2e_services import start_services, teardown


@pytest.fixture(scope="session")
def services(tmp_path_factory):
    svc = start_services(tmp_path_factory.mktemp("e2e"))
    try:
        yield svc
    finally:
        teardown(svc)
