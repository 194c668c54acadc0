"""The ground segment below the commands: ``passes`` (from the TLE), ``link`` (the daily
budget and windows), ``framing`` and ``erasure`` (patches into authenticated frames),
``channel`` (loss), ``planner`` (which patch in which pass), ``uplink`` (a campaign over
the passes, acknowledged only by telemetry), ``ledger`` (SQLite: what the ground believes
is on board), ``scenario`` (compile, verify, pack, uplink, fly, judge), ``timeline`` (plots).
"""
