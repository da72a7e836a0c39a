from tests.support.hardhat_fixtures import hardhat_node  # noqa: F401
from tests.support.litecoin_fixtures import litecoin_regtest  # noqa: F401
from tests.support.monero_fixtures import monero_regtest  # noqa: F401
