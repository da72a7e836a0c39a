#!/usr/bin/env node
// Compiles TestToken.sol with the npm `solc` pinned in package.json (offline: soljson ships in the
// package) and writes TestToken.json = {"abi": [...], "bytecode": "0x..."}. Run it by hand after
// changing TestToken.sol (`node compile.js` here, after `npm ci`); the JSON is committed and the
// tests only read it.
"use strict";

const fs = require("fs");
const path = require("path");
const solc = require("solc");

const here = __dirname;
const source = fs.readFileSync(path.join(here, "TestToken.sol"), "utf8");
const input = {
  language: "Solidity",
  sources: { "TestToken.sol": { content: source } },
  settings: {
    evmVersion: "paris",
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) {
  console.error(e.formattedMessage);
}
if (errors.length > 0) {
  process.exit(1);
}
const contract = output.contracts["TestToken.sol"].TestToken;
const artifact = {
  abi: contract.abi,
  bytecode: "0x" + contract.evm.bytecode.object,
};
fs.writeFileSync(path.join(here, "TestToken.json"), JSON.stringify(artifact, null, 2) + "\n");
console.log(`TestToken.json written with solc ${solc.version()} (${contract.evm.bytecode.object.length / 2} bytes)`);
