"""Conformance: the official smartapi-python client (SmartWebSocketV2 + SmartConnect) against
tickmux's simulator (brokers.md §2.8).

Usage: angel_ws.py WS_URL REST_URL INSTRUMENTS_URL CONTROL_URL API_KEY JWT CLIENT_CODE FEED_TOKEN
Prints one JSON object with what the official client saw; the Rust test judges it.

1. REST: SmartConnect(root=...) + setAccessToken: getProfile, getMarketData (FULL), ltpData,
   and getProfile with a wrong token (the SDK returns Angel's error envelope, never raises).
2. WebSocket: SmartWebSocketV2 with ROOT_URI pointed at the simulator, connect() in a thread;
   on_open subscribes LTP, Quote and SnapQuote (modes 1-3) for INFY, NIFTY 50 and the first
   NIFTY future, and Depth-20 (mode 4) for INFY, through the client's own subscribe(). Every
   on_data tick is checked (fields per brokers.md §2.3), the first of each (token, mode) kept.
   Then the simulator resets the TCP connection: the SDK's single retry reconnects, on_open
   re-subscribes (the SDK doubles the token lists, brokers.md §2.5) and ticks flow again.
3. Wrong credentials: a wrong JWT and a wrong feed token are refused with HTTP 401 and
   x-error-message; the SDK reports it through on_error.

The SDK writes ./logs/<date>/app.log, so the script runs in a temporary directory. Every wait
is bounded; the process ends with os._exit (SDK threads are not joinable in every state).
"""

import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.request

(ws_url, rest_url, instruments_url, control_url, api_key, jwt, client_code,
 feed_token) = sys.argv[1:9]

WORKDIR = tempfile.mkdtemp(prefix="tickmux-angel-")
os.chdir(WORKDIR)  # SmartConnect() and SmartWebSocketV2() create ./logs/<date>/app.log

result = {"errors": [], "violations": []}
lock = threading.Lock()


def finish(code):
    result["logs_written"] = os.path.isdir(os.path.join(WORKDIR, "logs"))
    print(json.dumps(result, default=str), flush=True)
    os.chdir("/")
    shutil.rmtree(WORKDIR, ignore_errors=True)
    os._exit(code)


def import_smartapi():
    """Import SmartApi without its network call. SmartConnect's class body GETs
    https://api.ipify.org with no timeout and then discards the answer (its finally: block
    hard-codes both IPs), brokers.md §2.5. Refusing that one request keeps the test off the
    network and unable to hang there; the SDK takes its own offline path."""
    import requests

    real_get = requests.get
    hits = []

    def offline_get(url, *args, **kwargs):
        if "api.ipify.org" in str(url):
            hits.append(str(url))
            raise requests.ConnectionError("conformance test: no network for api.ipify.org")
        return real_get(url, *args, **kwargs)

    requests.get = offline_get
    try:
        from SmartApi import SmartConnect
        from SmartApi.smartWebSocketV2 import SmartWebSocketV2
    finally:
        requests.get = real_get
    result["ipify_refused"] = len(hits)
    return SmartConnect, SmartWebSocketV2


try:
    SmartConnect, SmartWebSocketV2 = import_smartapi()
    import websocket
    from importlib.metadata import version

    result["versions"] = {
        "smartapi-python": version("smartapi-python"),
        "websocket-client": version("websocket-client"),
        "logzero": version("logzero"),
    }
except Exception as e:  # reported, not raised: the Rust test prints it
    result["errors"].append("import: %r" % e)
    finish(1)


def control(body):
    req = urllib.request.Request(
        control_url.rstrip("/") + "/sim/faults",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(req, timeout=5).read()


def sim_state():
    with urllib.request.urlopen(control_url.rstrip("/") + "/sim/state", timeout=5) as r:
        return json.load(r)


# --- the simulator's Angel master: the instruments the test subscribes ----------------------
with urllib.request.urlopen(instruments_url, timeout=10) as r:
    master = json.load(r)


def find(pred):
    return next(row for row in master if pred(row))


infy = find(lambda r: r["exch_seg"] == "NSE" and r["symbol"] == "INFY-EQ")
nifty = find(lambda r: r["exch_seg"] == "NSE" and r["symbol"] == "Nifty 50")
fut = find(lambda r: r["exch_seg"] == "NFO" and r["instrumenttype"] == "FUTIDX"
           and r["name"] == "NIFTY")
result["instruments"] = {
    "infy": infy["token"], "nifty": nifty["token"], "future": fut["token"],
    "future_symbol": fut["symbol"],
}
# tick_size in the Angel master is in paise, like the prices on the wire.
TICK = {r["token"]: float(r["tick_size"]) for r in (infy, nifty, fut)}
INDEX = {nifty["token"]}
NSE_CM, NSE_FO = SmartWebSocketV2.NSE_CM, SmartWebSocketV2.NSE_FO

# --- 1. REST ------------------------------------------------------------------------------------
rest = result["rest"] = {}
try:
    sc = SmartConnect(api_key=api_key, root=rest_url)
    sc.setAccessToken(jwt)
    p = sc.getProfile("sim-refresh-token")
    rest["profile_status"] = p.get("status")
    rest["profile_clientcode"] = (p.get("data") or {}).get("clientcode")
    md = sc.getMarketData("FULL", {"NSE": [infy["token"], nifty["token"], "999999"],
                                   "NFO": [fut["token"]]})
    fetched = md["data"]["fetched"]
    rest["quote_fetched"] = sorted(q["symbolToken"] for q in fetched)
    rest["quote_unfetched"] = [q["symbolToken"] for q in md["data"]["unfetched"]]
    q = next(q for q in fetched if q["symbolToken"] == infy["token"])
    rest["quote_infy"] = {
        "ltp": q["ltp"], "tradingSymbol": q["tradingSymbol"],
        "buy_levels": len(q["depth"]["buy"]), "sell_levels": len(q["depth"]["sell"]),
        "lowerCircuit": q["lowerCircuit"], "upperCircuit": q["upperCircuit"],
    }
    rest["quote_ltp"] = {q["symbolToken"]: q["ltp"] for q in fetched}
    ld = sc.ltpData("NSE", infy["symbol"], infy["token"])
    rest["ltp_data"] = {"status": ld["status"], "ltp": ld["data"]["ltp"],
                        "tradingsymbol": ld["data"]["tradingsymbol"]}
    bad = SmartConnect(api_key=api_key, root=rest_url)
    bad.setAccessToken("wrong-jwt-000")
    b = bad.getProfile("sim-refresh-token")
    rest["bad_token"] = {"status": b.get("status"), "errorcode": b.get("errorcode"),
                         "message": b.get("message")}
except Exception as e:
    result["errors"].append("rest: %r" % e)

# --- 2. WebSocket: ticks, a reset, the SDK's reconnect -------------------------------------------
# Module-level token lists, as in the SDK's README: the SDK keeps references to them and
# extends them on every subscribe, so on_open after the reconnect sends them doubled.
LISTS = {
    mode: [{"exchangeType": NSE_CM, "tokens": [infy["token"], nifty["token"]]},
           {"exchangeType": NSE_FO, "tokens": [fut["token"]]}]
    for mode in (1, 2, 3)
}
LISTS[4] = [{"exchangeType": NSE_CM, "tokens": [infy["token"]]}]
EXCH = {infy["token"]: NSE_CM, nifty["token"]: NSE_CM, fut["token"]: NSE_FO}
WANTED = {(tok, mode) for mode in (1, 2, 3) for tok in EXCH} | {(infy["token"], 4)}

ws = result["ws"] = {
    "opens": 0, "ticks": [0, 0], "per_key": [{}, {}], "samples": {}, "sent": [],
    "raw_errors": [], "user_errors": [],
}
enough = [threading.Event(), threading.Event()]
close_now = threading.Event()
closed = threading.Event()
last_seq = [0]  # per connection: the simulator numbers packets per connection


class Observed(SmartWebSocketV2):
    """The SDK unchanged, with its internal error hook observed: the user-level on_error only
    ever hears "Max retry attempt reached", the raw cause (e.g. the 401) arrives here."""

    def _on_error(self, wsapp, error):
        info = {"type": type(error).__name__, "text": str(error)[:200]}
        if isinstance(error, websocket.WebSocketBadStatusException):
            info["status"] = error.status_code
            info["x_error_message"] = (error.resp_headers or {}).get("x-error-message")
        self.raw_errors.append(info)
        super()._on_error(wsapp, error)


def violation(msg):
    if len(result["violations"]) < 20:
        result["violations"].append(msg)


def check_tick(d):
    """Every tick, every field the mode carries (brokers.md §2.3)."""
    tok, mode = d.get("token"), d.get("subscription_mode")
    key = "%s/%s" % (tok, mode)
    if (tok, mode) not in WANTED:
        return violation("unsubscribed tick %s" % key)
    if d.get("exchange_type") != EXCH[tok]:
        violation("%s: exchange_type %r" % (key, d.get("exchange_type")))
    now_ms = time.time() * 1000
    if abs(d.get("exchange_timestamp", 0) - now_ms) > 86_400_000:
        violation("%s: exchange_timestamp %r is not epoch ms of today" % (key, d.get("exchange_timestamp")))
    if mode == 4:
        buy, sell = d.get("depth_20_buy_data", []), d.get("depth_20_sell_data", [])
        if len(buy) != 20 or len(sell) != 20:
            return violation("%s: depth-20 %d/%d levels" % (key, len(buy), len(sell)))
        bp = [lv["price"] for lv in buy]
        sp = [lv["price"] for lv in sell]
        if bp != sorted(bp, reverse=True) or sp != sorted(sp) or bp[0] >= sp[0]:
            violation("%s: depth-20 book out of order %r %r" % (key, bp[:3], sp[:3]))
        if any(lv["quantity"] <= 0 or lv["num_of_orders"] <= 0 for lv in buy + sell):
            violation("%s: depth-20 level without quantity or orders" % key)
        return
    ltp = d.get("last_traded_price", 0)
    if ltp <= 0 or (TICK[tok] > 0 and ltp % TICK[tok]):
        violation("%s: last_traded_price %r not a positive multiple of tick %r" % (key, ltp, TICK[tok]))
    seq = d.get("sequence_number")
    if tok in INDEX:
        if seq != 0:
            violation("%s: index sequence_number %r" % (key, seq))
    else:
        if seq is None or seq <= last_seq[0]:
            violation("%s: sequence_number %r not increasing" % (key, seq))
        last_seq[0] = seq
    if mode >= 2:
        lo, hi = d["low_price_of_the_day"], d["high_price_of_the_day"]
        if not (0 < lo <= ltp <= hi) or not (lo <= d["open_price_of_the_day"] <= hi):
            violation("%s: OHLC %r/%r/%r around ltp %r" % (key, d["open_price_of_the_day"], lo, hi, ltp))
        if d["closed_price"] <= 0:
            violation("%s: closed_price %r" % (key, d["closed_price"]))
        if not isinstance(d["total_buy_quantity"], float):
            violation("%s: total_buy_quantity is not a float" % key)
        if tok not in INDEX and (d["volume_trade_for_the_day"] <= 0 or d["average_traded_price"] <= 0):
            violation("%s: volume %r / average %r" % (key, d["volume_trade_for_the_day"], d["average_traded_price"]))
    if mode == 3 and tok not in INDEX:
        buy, sell = d["best_5_buy_data"], d["best_5_sell_data"]
        if len(buy) != 5 or len(sell) != 5:
            return violation("%s: best five %d/%d" % (key, len(buy), len(sell)))
        bp = [e["price"] for e in buy]
        sp = [e["price"] for e in sell]
        if bp != sorted(bp, reverse=True) or sp != sorted(sp) or bp[0] >= sp[0]:
            violation("%s: best five out of order %r %r" % (key, bp, sp))
        if any(e["flag"] == 0 for e in buy) or any(e["flag"] != 0 for e in sell):
            violation("%s: best-five flags %r %r" % (key, [e["flag"] for e in buy], [e["flag"] for e in sell]))
        lc, uc = d["lower_circuit_limit"], d["upper_circuit_limit"]
        if not (0 < lc < ltp < uc):
            violation("%s: circuits %r..%r around ltp %r" % (key, lc, uc, ltp))
        if not (0 < d["52_week_low_price"] <= d["low_price_of_the_day"]
                and d["high_price_of_the_day"] <= d["52_week_high_price"]):
            violation("%s: 52-week %r..%r vs day %r..%r" % (
                key, d["52_week_low_price"], d["52_week_high_price"], lo, hi))


def on_open(wsapp):
    with lock:
        ws["opens"] += 1
        last_seq[0] = 0
    for mode in (1, 2, 3, 4):
        sws.subscribe("tmx%d" % mode, mode, LISTS[mode])
        with lock:
            ws["sent"].append({"mode": mode, "tokens": sum(len(g["tokens"]) for g in LISTS[mode])})


def on_data(wsapp, d):
    if close_now.is_set():
        if not closed.is_set():
            closed.set()
            sws.close_connection()  # from the SDK's own thread: returns at once
        return
    with lock:
        check_tick(d)
        p = 0 if ws["opens"] <= 1 else 1  # ticks of the first connection, of the second
        ws["ticks"][p] += 1
        key = "%s/%s" % (d.get("token"), d.get("subscription_mode"))
        ws["per_key"][p][key] = ws["per_key"][p].get(key, 0) + 1
        if p == 0 and key not in ws["samples"]:
            ws["samples"][key] = d
        if ws["ticks"][p] >= 200 and len(ws["per_key"][p]) == len(WANTED) and \
                min(ws["per_key"][p].values()) >= 3:
            enough[p].set()


def on_error(*args):
    with lock:
        ws["user_errors"].append(" ".join(str(a) for a in args)[:200])


try:
    # The SDK sends Authorization verbatim; its own login returns "Bearer <jwt>".
    sws = Observed("Bearer " + jwt, api_key, client_code, feed_token,
                   max_retry_attempt=1, retry_strategy=0, retry_delay=0.5)
    sws.raw_errors = ws["raw_errors"]
    sws.ROOT_URI = ws_url
    sws.on_open, sws.on_data, sws.on_error = on_open, on_data, on_error
    t = threading.Thread(target=sws.connect, daemon=True)
    t.start()
    ws["before"] = enough[0].wait(20)
    if ws["before"]:
        control({"fault": "reset"})
        ws["after"] = enough[1].wait(20)
        if ws["after"]:
            conns = [c for c in sim_state()["connections"] if c["broker"] == "angel"]
            ws["sim_connections"] = [
                {k: c[k] for k in ("subscribe_messages", "tokens_subscribed_total",
                                   "duplicate_subscribes")} | {"keys": len(c["keys"])}
                for c in conns
            ]
    close_now.set()
    ws["closed_by_sdk"] = closed.wait(5)
    t.join(5)
    ws["thread_ended"] = not t.is_alive()
    ws["list_after"] = [len(g["tokens"]) for g in LISTS[1]]
except Exception as e:
    result["errors"].append("ws: %r" % e)

# --- 3. Wrong credentials ------------------------------------------------------------------------
result["bad_auth"] = []
for what, args in (
    ("jwt", ("Bearer wrong-jwt-000", api_key, client_code, feed_token)),
    ("feed_token", ("Bearer " + jwt, api_key, client_code, "wrong-feed-000")),
):
    case = {"case": what, "raw_errors": [], "user_errors": [], "ticks": 0}
    try:
        heard = threading.Event()
        bad = Observed(*args, max_retry_attempt=0)
        bad.raw_errors = case["raw_errors"]
        bad.ROOT_URI = ws_url

        def bad_error(*a, case=case, heard=heard):
            case["user_errors"].append(" ".join(str(x) for x in a))
            heard.set()

        def bad_data(*a, case=case):
            case["ticks"] += 1

        bad.on_error, bad.on_data = bad_error, bad_data
        bad.on_open = lambda wsapp, case=case: case.setdefault("opened", True)
        bt = threading.Thread(target=bad.connect, daemon=True)
        bt.start()
        case["on_error"] = heard.wait(10)
        bt.join(5)
        case["thread_ended"] = not bt.is_alive()
    except Exception as e:
        result["errors"].append("bad %s: %r" % (what, e))
    result["bad_auth"].append(case)

result["completed"] = True
finish(0)
