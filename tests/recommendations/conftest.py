import pytest

from portal.msclient import clear_token_cache
from tests.msfake import CLIENT_ID, CLIENT_SECRET, TENANT
from tests.recommendations.defender_fake import DefenderFake


@pytest.fixture
def defender(settings, monkeypatch, tmp_path):
    """The Defender API fake, served over HTTPS, with the portal configured to use it and trust its CA."""
    fake = DefenderFake(tmp_path).start()
    fake.trust(monkeypatch)
    settings.DEFENDER_TENANT_ID = TENANT
    settings.DEFENDER_CLIENT_ID = CLIENT_ID
    settings.DEFENDER_CLIENT_SECRET = CLIENT_SECRET
    settings.DEFENDER_AUTHORITY_URL = fake.base_url
    settings.DEFENDER_API_URL = fake.api_url
    settings.DEFENDER_HTTP_TIMEOUT = 5
    settings.DEFENDER_BACKOFF_BASE_SECONDS = 0.05
    settings.DEFENDER_PAGE_SIZE = 10
    settings.DEFENDER_SPOOL_DIR = str(tmp_path)
    clear_token_cache()
    yield fake
    fake.stop()
    clear_token_cache()
