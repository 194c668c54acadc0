"""The telecommand link, board side: CCSDS TC frames and Space Packets (``tc_frames``),
SDLS-style authentication and anti-replay (``link_security``), the erasure code
(``erasure``) and the ``receiver`` that turns frames from any number of passes into each
complete patch, exactly once. It knows nothing of what a patch means.
"""
