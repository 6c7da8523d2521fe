"""Conformance: the official pykiteconnect client against tickmux's simulator.

Usage: kite_ticker.py WS_URL REST_URL CONTROL_URL API_KEY ACCESS_TOKEN
Prints one JSON object with what the official client saw; the Rust test checks it.
Connects, subscribes (quote + full), receives and parses ticks, then asks the simulator to
reset the TCP connection and checks that the client reconnects and ticks again.
"""

import json
import sys
import threading
import urllib.request

from kiteconnect import KiteConnect, KiteTicker

ws_url, rest_url, control_url, api_key, token = sys.argv[1:6]
INFY, NIFTY = 408065, 256265

result = {"connects": 0, "ticks_before": 0, "ticks_after": 0, "errors": [], "samples": {}}
lock = threading.Lock()
done = threading.Event()
dropped = threading.Event()


def control(body):
    req = urllib.request.Request(
        control_url.rstrip("/") + "/sim/faults",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(req, timeout=5).read()


# REST: profile and LTP through the official REST client.
kc = KiteConnect(api_key, access_token=token, root=rest_url)
result["profile_user_id"] = kc.profile()["user_id"]
result["ltp"] = kc.ltp(["NSE:INFY"])["NSE:INFY"]["last_price"]
try:
    KiteConnect(api_key, access_token="wrong-token-000", root=rest_url).profile()
    result["bad_token_error"] = None
except Exception as e:  # the client raises TokenException for a 403
    result["bad_token_error"] = type(e).__name__

kws = KiteTicker(api_key, token, root=ws_url, reconnect=True, reconnect_max_tries=10)


def on_connect(ws, response):
    with lock:
        result["connects"] += 1
    ws.subscribe([INFY, NIFTY])
    ws.set_mode(ws.MODE_FULL, [INFY])


def on_ticks(ws, ticks):
    with lock:
        for t in ticks:
            key = "%d_%s" % (t["instrument_token"], t["mode"])
            if key not in result["samples"]:
                s = {k: v for k, v in t.items() if k in ("mode", "tradable", "last_price")}
                s["has_depth"] = "depth" in t and len(t["depth"]["buy"]) == 5
                s["has_ohlc"] = "ohlc" in t
                result["samples"][key] = s
        if result["connects"] <= 1 and not dropped.is_set():
            result["ticks_before"] += len(ticks)
            if result["ticks_before"] >= 50 and len(result["samples"]) >= 2:
                dropped.set()
                threading.Thread(target=control, args=({"fault": "reset"},)).start()
        elif result["connects"] >= 2:
            result["ticks_after"] += len(ticks)
            if result["ticks_after"] >= 50:
                done.set()


def on_error(ws, code, reason):
    with lock:
        result["errors"].append("%s %s" % (code, reason))


kws.on_connect = on_connect
kws.on_ticks = on_ticks
kws.on_error = on_error
kws.connect(threaded=True)
ok = done.wait(60)
result["completed"] = ok
print(json.dumps(result), flush=True)
# Twisted's reactor thread cannot be stopped cleanly from here; exit hard.
import os  # noqa: E402

os._exit(0 if ok else 1)
