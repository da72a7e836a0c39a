from tests.support.monero_fixtures import monero_regtest  # noqa: F401
