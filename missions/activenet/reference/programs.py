"""The workloads' programs for the hand-written reference router (``router.py``): the same
logic as ``programs/ping.ccl``, ``traceroute.ccl`` and ``multicast.ccl``, as Python source
a packet carries (PLAN) or names by identifier (ANTS). Keyed by the CCL program's file
name. (The flood and the reliable transfer need VMlet-SoftState's services, which the
reference router does not have.)"""

from __future__ import annotations

PING = b"""
def main(api):
    stage = api.arg(0)
    if stage == 0:
        api.setarg(0, 1)
        api.setarg(2, api.now_ms())
        api.onremote(min(api.arg(1), 254), api.getrb())
    elif stage == 1:
        api.setarg(0, 2)
        api.bounce(api.getrb())
    else:
        api.deliver(max(api.now_ms() - api.arg(2), 0))
"""

TRACEROUTE = b"""
def main(api):
    if api.arg(0) == 0:
        hops = min(api.arg(2), 254)
        here = api.thisnode()
        if here != api.getsrc():
            api.setarg(0, 1)
            api.setarg(3, here)
            api.bounce(3000)
        if here != api.arg(1):
            api.setarg(0, 0)
            api.setarg(2, hops + 1)
            api.toward(min(api.arg(1), 254), api.getrb())
    else:
        api.deliver(min(api.arg(2), 255) * 256 + min(api.arg(3), 255))
"""

MULTICAST = b"""
def main(api):
    here = api.thisnode()
    hop = [255] * 8
    for k in range(2, 8):
        d = api.arg(k)
        if d != here and d < 255:
            hop[k] = api.route(d)
    if here in [api.arg(k) for k in range(2, 8)]:
        api.deliver(api.arg(0))
    leads = [k for k in range(2, 8) if hop[k] != 255 and hop[k] not in hop[2:k]]
    share = api.getrb() // max(len(leads), 1)
    for k in leads:
        for j in range(2, 8):
            api.setarg(j, api.arg(j) if hop[j] == hop[k] else 255)
        api.onneighbor(hop[k], share)
"""

PROGRAMS = {"ping.ccl": PING, "traceroute.ccl": TRACEROUTE, "multicast.ccl": MULTICAST}
