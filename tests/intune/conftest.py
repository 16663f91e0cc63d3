import pytest

from intune.graph import clear_token_cache
from intune.models import IntuneConnection
from intune.services import intune_connection_set
from tests.intune.graph_fake import CLIENT_ID, CLIENT_SECRET, TENANT, GraphFake


@pytest.fixture
def graph(settings, monkeypatch, tmp_path):
    """The Graph fake, served over HTTPS, with the portal configured to use it and trust its CA."""
    fake = GraphFake(tmp_path).start()
    fake.trust(monkeypatch)
    settings.INTUNE_TENANT_ID = TENANT
    settings.INTUNE_CLIENT_ID = CLIENT_ID
    settings.INTUNE_CLIENT_SECRET = CLIENT_SECRET
    settings.INTUNE_AUTHORITY_URL = fake.base_url
    settings.INTUNE_GRAPH_URL = fake.graph_url
    settings.INTUNE_HTTP_TIMEOUT = 5
    settings.INTUNE_BACKOFF_BASE_SECONDS = 0.05
    clear_token_cache()
    yield fake
    fake.stop()
    clear_token_cache()


@pytest.fixture
def intune_on(superuser):
    return intune_connection_set(user=superuser, enabled=True)


@pytest.fixture
def intune_off(db):
    return IntuneConnection.load()
