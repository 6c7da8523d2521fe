"""Conformance: the official `openalgo` Python SDK (openalgo.md §5) against tickmux's proxy.

Usage: openalgo_client.py WS_URL API_KEY
Connects with a wrong key (must fail), then with the right one; subscribes LTP, Quote and
Depth through the SDK's own methods; waits for its callbacks and caches; unsubscribes; prints
one JSON line with what it saw. Exits 0 either way: the Rust test judges the JSON.
"""

import json
import sys
import threading
import time

import openalgo

ws_url, key = sys.argv[1], sys.argv[2]
out = {"sdk_version": getattr(openalgo, "__version__", "?")}

bad = openalgo.api(api_key="not-the-key-" + "x" * 20, host="http://127.0.0.1:5000", ws_url=ws_url)
out["bad_key_connect"] = bad.connect()
bad.disconnect()

client = openalgo.api(api_key=key, host="http://127.0.0.1:5000", ws_url=ws_url)
out["connect"] = client.connect()

lock = threading.Lock()
seen = {"ltp": [], "quote": [], "depth": []}


def keep(kind):
    def cb(msg):
        with lock:
            if len(seen[kind]) < 200:
                seen[kind].append(msg)
    return cb


out["subscribe_ltp"] = client.subscribe_ltp(
    [{"exchange": "NSE", "symbol": "INFY"}, {"exchange": "NSE_INDEX", "symbol": "NIFTY"}],
    on_data_received=keep("ltp"))
out["subscribe_quote"] = client.subscribe_quote(
    [{"exchange": "NSE", "symbol": "RELIANCE"}], on_data_received=keep("quote"))
out["subscribe_depth"] = client.subscribe_depth(
    [{"exchange": "NSE", "symbol": "TCS"}], on_data_received=keep("depth"))

deadline = time.time() + 30
while time.time() < deadline:
    with lock:
        syms = {m["exchange"] + ":" + m["symbol"] for m in seen["ltp"]}
        if len(seen["quote"]) >= 5 and len(seen["depth"]) >= 5 and {"NSE:INFY", "NSE_INDEX:NIFTY"} <= syms:
            break
    time.sleep(0.05)

with lock:
    out["counts"] = {k: len(v) for k, v in seen.items()}
    out["ltp_symbols"] = sorted({m["exchange"] + ":" + m["symbol"] for m in seen["ltp"]})
    out["ltp_sample"] = seen["ltp"][-1] if seen["ltp"] else None
    out["quote_sample"] = seen["quote"][-1] if seen["quote"] else None
    out["depth_sample"] = seen["depth"][-1] if seen["depth"] else None

# The SDK's own caches, filled by its parser.
out["cache_ltp"] = client.get_ltp()
out["cache_quote"] = client.get_quotes()
out["cache_depth"] = client.get_depth()

out["unsubscribe_ltp"] = client.unsubscribe_ltp([{"exchange": "NSE", "symbol": "INFY"}])
client.disconnect()
print(json.dumps(out, default=str))
