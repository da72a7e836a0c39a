// Hardhat 2 config for the local test node (tests/support/hardhat_node.py). No Solidity sources live
// in this project's contracts/ folder (TestToken.sol is compiled by compile.js with npm solc), so
// `hardhat node` never needs to download a compiler; the version below is only the config's default.
module.exports = {
  solidity: "0.8.24",
};
