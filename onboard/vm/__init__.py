"""The Virtual Virtual Machine: the instruction set (``isa``), the machine model every
engine and proof derives from (``machine``), images, the load-time bytecode ``verifier``,
``binding`` and the ``loader`` (the VVM becomes the VM its VMlets describe), the two engines
(``reference``: the specification; ``translate``: the one that flies), the ``scheduler``
(frames, EDF, the share), ``telemetry``, and ``vvm``, the object that runs them.

It knows nothing of patches: reconfiguration attaches to a VVM (``vvm.Reconfigurer``).
"""
