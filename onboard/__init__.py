"""The flight side: everything that runs on the satellite, standing alone (stdlib and
construct; nothing of ``ccl``, ``ground`` or ``missions``).

In the order data flows on board: ``link`` (TC frames in, authenticated, erasure-decoded,
each complete patch out once) -> ``patching`` (the patch format, its checks, the
configuration store, switch, probation, commit, rollback, boot) -> ``vm`` (the instruction
set, images, the bytecode verifier, the loader that makes the VVM become its VMlets, the
engines, the scheduler under the 10 % share, telemetry). ``sim`` assembles them into a
simulated spacecraft. ``mission`` (the profile both sides agree on), ``errors`` (the one
shape of a refusal) and ``bounded_decoding`` (untrusted bytes, every length bounded first)
serve all of them.
"""
