"""The RVM: ``vvm repl``, an interactive ground console attached to a simulated VVM.

``workspace`` holds the CCL the session has typed (the configuration's declarations, the
instructions of its own VMlet, whole VMlets) and writes it as source files; ``session``
sends every change through the uplink's path (compile, prove, pack, check on board,
apply at a frame boundary, probation) and evaluates expressions; ``command`` is the
``vvm repl`` command: reading, dispatching and showing.

It is the one part of the ``vvm`` command that reaches ``ccl`` (tests/test_architecture.py):
the console compiles and proves on the ground before the board sees anything.
"""
