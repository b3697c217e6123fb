"""Fixtures of the discovery tests: settings changed through the service layer (so that the
cached copies move with their state), and XML parsed with a real, safe parser."""
import pytest


@pytest.fixture
def system(db):
    """system(**field values) -> SystemSettings, updated through registry.services."""
    from accounts.models import SystemSettings
    from registry import services as registry

    def update(**values):
        registry.update(SystemSettings._declaration, None, values, "test")
        return SystemSettings.load()

    update(hostname="mail.example.org")
    return update


@pytest.fixture
def mta_sts(db):
    from registry import services as registry
    from wellknown.models import MtaSts

    def update(**values):
        registry.update(MtaSts._declaration, None, values, "test")
        return MtaSts.load()

    return update
