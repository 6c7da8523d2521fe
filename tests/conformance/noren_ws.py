"""Conformance: an official NorenRestApiPy build (NorenApi) against tickmux's simulator
(brokers.md §3.8).

Usage: noren_ws.py BUILD WS_URL REST_URL MASTERS_URL CONTROL_URL UID TOKEN
BUILD is `classic` (PyPI NorenRestApiPy 0.0.22: login `t:"c"` + susertoken, REST `&jKey=`) or
`oauth` (PyPI norenrestapi 0.0.37: login `t:"a"` + accesstoken, REST `Authorization: Bearer`).
Both install as the module `NorenRestApiPy`, so each lives in its own `pip install --target`
directory and the caller puts the right one on PYTHONPATH; the script reports which
distribution it actually imported. Prints one JSON object; the Rust test judges it.

1. REST: get_limits and get_quotes (INFY, and an unknown token, which the client turns into
   None), and get_limits with a wrong token (the client returns the Not_Ok body).
2. WebSocket: start_websocket; socket_open_callback subscribes touchline (INFY, NIFTY 50, the
   first NIFTY future) and depth (INFY, the future), as the README does, so reconnects
   re-subscribe. Every tk/tf/dk/df is checked (all values strings, a snapshot before any
   delta, tk-only fields only in snapshots) and merged per scrip, the merged view checked.
   Then the simulator resets the connection; the client's 100 ms reconnect loop logs in again,
   the open callback re-subscribes and fresh snapshots arrive.
3. A wrong token: the login is answered ck Not_Ok and reaches socket_error_callback.

The client's reconnect loop never stops on its own (close_websocket() is a no-op while
disconnected), and close_websocket() from another thread waits out websocket-client's 10 s
select, so the script closes from inside the client's own callbacks, where the socket is
known to be open (close_websocket then fails to join its own thread: that RuntimeError is
expected and swallowed). Every wait is bounded; the process ends with os._exit.
"""

import io
import json
import os
import sys
import threading
import urllib.request
import zipfile

build, ws_url, rest_url, masters_url, control_url, uid, token = sys.argv[1:8]
assert build in ("classic", "oauth"), build

result = {"build": build, "errors": [], "violations": []}
lock = threading.Lock()


def finish(code):
    print(json.dumps(result, default=str), flush=True)
    os._exit(code)


try:
    import importlib.metadata as md

    import NorenRestApiPy
    from NorenRestApiPy.NorenApi import FeedType, NorenApi

    where = os.path.dirname(os.path.dirname(os.path.abspath(NorenRestApiPy.__file__)))
    dists = [
        (d.metadata["Name"], d.version)
        for d in md.distributions(path=[where])
        if "NorenRestApiPy" in (d.read_text("top_level.txt") or "")
    ]
    result["module_dir"] = where
    result["dists"] = dists
    result["websocket_client"] = md.version("websocket-client")
except Exception as e:
    result["errors"].append("import: %r" % e)
    finish(1)


def sim_state():
    with urllib.request.urlopen(control_url.rstrip("/") + "/sim/state", timeout=5) as r:
        return json.load(r)


def control(body):
    req = urllib.request.Request(
        control_url.rstrip("/") + "/sim/faults",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(req, timeout=5).read()


def master(exch):
    """`{EXCH}_symbols.txt.zip`, the way Noren users download it."""
    with urllib.request.urlopen(masters_url.rstrip("/") + "/%s_symbols.txt.zip" % exch,
                                timeout=10) as r:
        z = zipfile.ZipFile(io.BytesIO(r.read()))
    text = z.read("%s_symbols.txt" % exch).decode()
    lines = [ln.rstrip(",").split(",") for ln in text.splitlines() if ln.strip()]
    head = lines[0]
    return [dict(zip(head, ln)) for ln in lines[1:]]


nse, nfo = master("NSE"), master("NFO")
infy = next(r for r in nse if r["TradingSymbol"] == "INFY-EQ")
nifty = next(r for r in nse if r["TradingSymbol"] == "Nifty 50")
fut = next(r for r in nfo if r["Instrument"] == "FUTIDX" and r["Symbol"] == "NIFTY")
INFY, NIFTY, FUT = ("NSE|" + infy["Token"], "NSE|" + nifty["Token"], "NFO|" + fut["Token"])
result["scrips"] = {"infy": INFY, "nifty": NIFTY, "future": FUT}
TOUCH = [INFY, NIFTY, FUT]
DEPTH = [INFY, FUT]
INDEX = {NIFTY}
WANTED = {("t", k) for k in TOUCH} | {("d", k) for k in DEPTH}
TK_ONLY = ("ts", "pp", "ti", "ls")


def new_api(tok):
    api = NorenApi(host=rest_url, websocket=ws_url)
    if build == "classic":
        api.set_session(uid, "", tok)
    else:
        api.set_session(uid, "", tok, tok)
    return api


# --- 1. REST --------------------------------------------------------------------------------
rest = result["rest"] = {}
try:
    api = new_api(token)
    if build == "oauth":
        # 0.0.37 sends REST calls with headers=self.__OAuthHeaders, set only here (or by
        # getAccessToken): set_session alone leaves REST calls without any token.
        lim = api.get_limits()
        rest["limits_before_oauth_header"] = lim.get("stat") if lim else None
        api.injectOAuthHeader(token, uid, uid)
    lim = api.get_limits()
    rest["limits"] = {k: lim.get(k) for k in ("stat", "actid", "cash", "emsg")}
    q = api.get_quotes("NSE", infy["Token"])
    rest["quote"] = None if q is None else {
        k: q.get(k) for k in ("stat", "exch", "tsym", "token", "lp", "c", "h", "l", "bp1", "sp1",
                              "uc", "lc", "ls", "ti", "pp")
    }
    if q is not None:
        rest["quote_all_strings"] = all(isinstance(v, str) for v in q.values())
    rest["unknown_quote"] = api.get_quotes("NSE", "999999")
    bad = new_api("wrong-token-000")
    if build == "oauth":
        bad.injectOAuthHeader("wrong-token-000", uid, uid)
    b = bad.get_limits()
    rest["bad_token"] = {k: b.get(k) for k in ("stat", "emsg")} if b else None
except Exception as e:
    result["errors"].append("rest: %r" % e)

# --- 2. WebSocket ------------------------------------------------------------------------------
ws = result["ws"] = {
    "opens": 0, "closes": 0, "socket_errors": [], "msgs": [0, 0], "per_key": [{}, {}],
    "snapshots": [{}, {}], "first_types": [{}, {}], "tf_without_lp": 0, "sparse_deltas": 0,
    "max_delta_fields": {"tf": 0, "df": 0},
}
merged = {}
enough = [threading.Event(), threading.Event()]
close_now = threading.Event()
closed = threading.Event()


def violation(msg):
    if len(result["violations"]) < 20:
        result["violations"].append(msg)


def num(m, k):
    try:
        return float(m[k])
    except (KeyError, ValueError):
        return None


def check_merged(feed, key, m):
    """The merged view of one scrip after every message (brokers.md §3.3)."""
    lp, ti = num(m, "lp"), num(m, "ti")
    if lp is None or lp <= 0:
        return violation("%s %s: lp %r" % (feed, key, m.get("lp")))
    if ti and abs(round(lp / ti) * ti - lp) > 1e-6:
        violation("%s %s: lp %s off the %s tick grid" % (feed, key, m["lp"], m["ti"]))
    lo, hi = num(m, "l"), num(m, "h")
    if lo is None or hi is None or not (lo <= lp <= hi):
        violation("%s %s: lp %s outside l..h %r..%r" % (feed, key, m.get("lp"), m.get("l"), m.get("h")))
    if feed == "d":
        bp = [num(m, "bp%d" % i) for i in range(1, 6)]
        sp = [num(m, "sp%d" % i) for i in range(1, 6)]
        if None in bp or None in sp:
            return violation("d %s: missing depth levels" % key)
        if bp != sorted(bp, reverse=True) or sp != sorted(sp) or bp[0] >= sp[0]:
            violation("d %s: book out of order %r %r" % (key, bp, sp))
        for f in ("bq", "sq", "bo", "so"):
            if any((num(m, "%s%d" % (f, i)) or 0) <= 0 for i in range(1, 6)):
                violation("d %s: %s1..5 not all positive" % (key, f))
        lc, uc = num(m, "lc"), num(m, "uc")
        if key not in INDEX and not (lc and uc and lc < lp < uc):
            violation("d %s: lp %s outside lc..uc %r..%r" % (key, m["lp"], m.get("lc"), m.get("uc")))
        lo52, hi52 = num(m, "52l"), num(m, "52h")
        if not (lo52 and hi52 and lo52 <= lo and hi <= hi52):
            violation("d %s: day %r..%r outside 52l..52h %r..%r" % (key, lo, hi, m.get("52l"), m.get("52h")))


def on_feed(m):
    if close_now.is_set():
        if not closed.is_set():
            closed.set()
            try:
                api.close_websocket()  # the socket is open: we are inside its callback
            except RuntimeError:
                pass  # close_websocket() joins the client's thread, which is this one
        return
    with lock:
        p = 0 if ws["opens"] <= 1 else 1
        t = m.get("t")
        feed = {"tk": "t", "tf": "t", "dk": "d", "df": "d"}.get(t)
        key = "%s|%s" % (m.get("e"), m.get("tk"))
        ws["msgs"][p] += 1
        if feed is None or (feed, key) not in WANTED:
            return violation("unexpected message %r for %s" % (t, key))
        bad = [k for k, v in m.items() if not isinstance(v, str)]
        if bad:
            violation("%s %s: non-string values %r" % (t, key, bad))
        name = "%s/%s" % (feed, key)
        ws["first_types"][p].setdefault(name, t)
        ws["per_key"][p][name] = ws["per_key"][p].get(name, 0) + 1
        if t in ("tk", "dk"):
            if name not in ws["snapshots"][p]:
                ws["snapshots"][p][name] = dict(m)
            merged[(feed, key)] = dict(m)
        else:
            if (feed, key) not in merged:
                return violation("%s %s before its snapshot" % (t, key))
            leaked = [k for k in TK_ONLY if k in m]
            if leaked:
                violation("%s %s carries snapshot-only fields %r" % (t, key, leaked))
            if t == "tf" and "lp" not in m:
                ws["tf_without_lp"] += 1
            if len(m) < len(merged[(feed, key)]):
                ws["sparse_deltas"] += 1
            ws["max_delta_fields"][t] = max(ws["max_delta_fields"][t], len(m))
            merged[(feed, key)].update(m)
        check_merged(feed, key, merged[(feed, key)])
        counts = ws["per_key"][p]
        if len(counts) == len(WANTED) and min(counts.values()) >= 10 and ws["msgs"][p] >= 150:
            enough[p].set()


def on_open():
    with lock:
        ws["opens"] += 1
        merged.clear()  # a new connection starts from snapshots again
    api.subscribe(TOUCH)  # FeedType.TOUCHLINE: {"t": "t", "k": "NSE|1594#NSE|26000#..."}
    api.subscribe(DEPTH, feed_type=FeedType.SNAPQUOTE)  # {"t": "d", ...}


def on_close():
    with lock:
        ws["closes"] += 1


def on_error(e):
    with lock:
        ws["socket_errors"].append(e if isinstance(e, dict) else "%s: %s" % (type(e).__name__, e))


try:
    api.start_websocket(subscribe_callback=on_feed, socket_open_callback=on_open,
                        socket_close_callback=on_close, socket_error_callback=on_error,
                        order_update_callback=lambda m: None)
    ws["before"] = enough[0].wait(20)
    if ws["before"]:
        control({"fault": "reset"})
        ws["after"] = enough[1].wait(20)
        if ws["after"]:
            conns = [c for c in sim_state()["connections"] if c["authenticated"]]
            ws["sim_connections"] = [
                {"broker": c["broker"], "keys": sorted(c["keys"].items()),
                 "subscribe_messages": c["subscribe_messages"]}
                for c in conns
            ]
    close_now.set()
    ws["closed_in_callback"] = closed.wait(5)
    th = api._NorenApi__ws_thread  # the client's reconnect-loop thread
    th.join(5)
    ws["loop_ended"] = not th.is_alive()
except Exception as e:
    result["errors"].append("ws: %r" % e)

# --- 3. A wrong token on the WebSocket -----------------------------------------------------------
bad_ws = result["bad_ws"] = {"errors": [], "opens": 0, "feed": 0}
try:
    before = sim_state()
    bad = new_api("wrong-token-000")
    heard = threading.Event()

    def bad_error(e):
        bad_ws["errors"].append(e if isinstance(e, dict) else "%s: %s" % (type(e).__name__, e))
        if isinstance(e, dict) and not heard.is_set():
            heard.set()
            try:
                bad.close_websocket()  # stop the 10 Hz reconnect loop while still connected
            except RuntimeError:
                pass  # it joins its own thread (this one)

    def bad_open():
        bad_ws["opens"] += 1

    def bad_feed(m):
        bad_ws["feed"] += 1

    bad.start_websocket(subscribe_callback=bad_feed, socket_open_callback=bad_open,
                        socket_error_callback=bad_error)
    bad_ws["error_callback"] = heard.wait(5)
    th = bad._NorenApi__ws_thread
    th.join(5)
    bad_ws["loop_ended"] = not th.is_alive()
    after = sim_state()
    bad_ws["rejected_auth"] = after["rejected_auth"] - before["rejected_auth"]
    bad_ws["connections"] = after["accepted_tcp"] - before["accepted_tcp"]
except Exception as e:
    result["errors"].append("bad ws: %r" % e)

result["completed"] = True
finish(0)
