#!/usr/bin/env python3
"""Independent reference for `keel tx` tests: signs with the eth-account library.

Reads one JSON request on standard input (keys never go on the command line) and writes one JSON
answer on standard output:

  {"op": "sign", "cases": [{"key": "0x..", "tx": {"chain_id": .., "nonce": .., "to": "0x..",
    "value": "<wei, decimal>", "data": "0x..", "gas_limit": .., "max_fee_per_gas": "<wei>",
    "max_priority_fee_per_gas": "<wei>"}}, ...]}
    -> {"results": [{"raw": "0x..", "hash": "0x..", "address": "0x..",
        "to_checksummed": "0x.."}, ...]}   (address and to_checksummed: EIP-55, eth-utils)
  {"op": "keystore", "key": "0x..", "password": "..", "path": "..", "iterations": N}
    -> {"address": "0x.."}   (writes an encrypted keystore v3 JSON file, scrypt with n = N)

Exits 3 with a one-line message if eth-account is not installed.
"""

import json
import sys

try:
    from eth_account import Account
    from eth_utils import to_checksum_address
except ImportError:
    print("eth-account is not installed: python3 -m pip install eth-account", file=sys.stderr)
    sys.exit(3)


def hex0x(b):
    h = b.hex()
    return h if h.startswith("0x") else "0x" + h


def sign(case):
    tx = case["tx"]
    signed = Account.sign_transaction(
        {
            "type": 2,
            "chainId": int(tx["chain_id"]),
            "nonce": int(tx["nonce"]),
            "to": to_checksum_address(tx["to"]),
            "value": int(tx["value"]),
            "data": tx["data"],
            "gas": int(tx["gas_limit"]),
            "maxFeePerGas": int(tx["max_fee_per_gas"]),
            "maxPriorityFeePerGas": int(tx["max_priority_fee_per_gas"]),
            "accessList": [],
        },
        case["key"],
    )
    raw = getattr(signed, "raw_transaction", None) or signed.rawTransaction
    return {
        "raw": hex0x(raw),
        "hash": hex0x(signed.hash),
        "address": Account.from_key(case["key"]).address,
        "to_checksummed": to_checksum_address(tx["to"]),
    }


def main():
    req = json.load(sys.stdin)
    if req["op"] == "sign":
        out = {"results": [sign(c) for c in req["cases"]]}
    elif req["op"] == "keystore":
        ks = Account.encrypt(req["key"], req["password"], kdf="scrypt",
                             iterations=int(req["iterations"]))
        with open(req["path"], "w") as f:
            json.dump(ks, f)
        out = {"address": Account.from_key(req["key"]).address}
    else:
        raise SystemExit("unknown op " + repr(req["op"]))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
