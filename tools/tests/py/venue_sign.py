#!/usr/bin/env python3
"""Independent reference for the venue signing tests (tools/tests/venue_signing.rs).

Reads one JSON request on standard input (keys never go on the command line) and writes one JSON
answer on standard output:

  {"op": "hyperliquid", "cases": [{"key": "0x..", "action_json": "<JSON text>", "nonce": N,
    "network": "mainnet"|"testnet"}, ...]}
    -> {"results": [{"msgpack": "<hex>", "connection_id": "0x..", "r": "0x..", "s": "0x..",
        "v": 27|28, "address": "0x.."}, ...]}
       msgpack with the `msgpack` package (keys in the action's order), keccak with eth-utils,
       the EIP-712 Agent signature with eth-account's encode_typed_data, r and s printed as the
       official SDK prints them (hex of the integer, no left padding).
  {"op": "binance", "secret": "...", "requests": ["<order.place JSON>", ...]}
    -> {"signatures": ["<hex>", ...]}   (HMAC-SHA256 of the params but `signature`, sorted by
       name, joined k=v&...; numbers as JSON prints them)

Exits 3 with a one-line message if eth-account or msgpack is not installed.
"""

import hashlib
import hmac
import json
import sys

try:
    import msgpack
    from eth_account import Account
    from eth_account.messages import encode_typed_data
    from eth_utils import keccak
except ImportError as e:
    print(f"missing package ({e}): python3 -m pip install eth-account msgpack", file=sys.stderr)
    sys.exit(3)


def hyperliquid(case):
    # The action's JSON text, parsed here so that its key order (significant) is kept.
    packed = msgpack.packb(json.loads(case["action_json"]))
    data = packed + int(case["nonce"]).to_bytes(8, "big") + b"\x00"
    connection_id = keccak(data)
    message = {
        "domain": {
            "chainId": 1337,
            "name": "Exchange",
            "verifyingContract": "0x0000000000000000000000000000000000000000",
            "version": "1",
        },
        "types": {
            "Agent": [
                {"name": "source", "type": "string"},
                {"name": "connectionId", "type": "bytes32"},
            ],
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
        },
        "primaryType": "Agent",
        "message": {
            "source": "a" if case["network"] == "mainnet" else "b",
            "connectionId": connection_id,
        },
    }
    signed = Account.sign_message(encode_typed_data(full_message=message), case["key"])
    return {
        "msgpack": packed.hex(),
        "connection_id": "0x" + connection_id.hex(),
        "r": hex(signed.r),
        "s": hex(signed.s),
        "v": signed.v,
        "address": Account.from_key(case["key"]).address,
    }


def binance(secret, request):
    params = json.loads(request)["params"]
    parts = []
    for k in sorted(params):
        if k == "signature":
            continue
        v = params[k]
        parts.append(f"{k}={v if isinstance(v, str) else json.dumps(v)}")
    return hmac.new(secret.encode(), "&".join(parts).encode(), hashlib.sha256).hexdigest()


def main():
    req = json.load(sys.stdin)
    if req["op"] == "hyperliquid":
        out = {"results": [hyperliquid(c) for c in req["cases"]]}
    elif req["op"] == "binance":
        out = {"signatures": [binance(req["secret"], r) for r in req["requests"]]}
    else:
        print(f"unknown op {req['op']!r}", file=sys.stderr)
        sys.exit(2)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
