#!/usr/bin/env python3
"""Independent check of Keel's pre-signed ladder requests with eth-account.

Reads one JSON object on standard input: {"requests": ["<whole HTTP request as text>", ...]}.
For each request, parses the HTTP head and the JSON-RPC body itself, decodes the raw transaction
with eth-account (sender recovered from the signature), and for eth_sendBundle recovers the
X-Flashbots-Signature signer (EIP-191 over the 0x-hex keccak256 of the exact body bytes).
Writes {"results": [{"method", "id", "content_length_ok", "block", "from", "nonce", "chain_id",
"to", "data", "max_fee_per_gas", "max_priority_fee_per_gas", "gas", "value", "hash",
"flashbots_signer", "flashbots_claimed"}, ...]}.
"""

import json
import sys

try:
    from eth_account import Account
    from eth_account.messages import encode_defunct
    from eth_account.typed_transactions import TypedTransaction
    from eth_utils import keccak
    from hexbytes import HexBytes
except ImportError:
    print("eth-account is not installed: python3 -m pip install eth-account", file=sys.stderr)
    sys.exit(3)


def hex0x(b):
    h = b.hex()
    return h if h.startswith("0x") else "0x" + h


def check(req):
    head, body = req.split("\r\n\r\n", 1)
    lines = head.split("\r\n")
    assert lines[0].startswith("POST ") and lines[0].endswith(" HTTP/1.1"), lines[0]
    headers = {}
    for line in lines[1:]:
        name, value = line.split(":", 1)
        headers[name.strip().lower()] = value.strip()
    body_bytes = body.encode()
    msg = json.loads(body)
    out = {
        "method": msg["method"],
        "id": msg["id"],
        "content_length_ok": int(headers["content-length"]) == len(body_bytes),
    }
    if msg["method"] == "eth_sendRawTransaction":
        raw = msg["params"][0]
    else:
        bundle = msg["params"][0]
        assert len(bundle["txs"]) == 1
        raw = bundle["txs"][0]
        out["block"] = int(bundle["blockNumber"], 16)
        claimed, sig = headers["x-flashbots-signature"].split(":")
        digest = hex0x(keccak(body_bytes))
        out["flashbots_signer"] = Account.recover_message(encode_defunct(text=digest), signature=sig)
        out["flashbots_claimed"] = claimed
    raw_b = bytes.fromhex(raw[2:])
    tx = TypedTransaction.from_bytes(HexBytes(raw_b)).as_dict()
    out.update({
        "from": Account.recover_transaction(raw),
        "hash": hex0x(keccak(raw_b)),
        "nonce": tx["nonce"],
        "chain_id": tx["chainId"],
        "to": hex0x(tx["to"]) if isinstance(tx["to"], bytes) else tx["to"],
        "data": hex0x(tx["data"]) if isinstance(tx["data"], bytes) else tx["data"],
        "max_fee_per_gas": str(tx["maxFeePerGas"]),
        "max_priority_fee_per_gas": str(tx["maxPriorityFeePerGas"]),
        "gas": tx["gas"],
        "value": str(tx["value"]),
    })
    return out


def main():
    req = json.load(sys.stdin)
    json.dump({"results": [check(r) for r in req["requests"]]}, sys.stdout)


if __name__ == "__main__":
    main()
