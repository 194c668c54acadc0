"""Patches on board: the one definition of their bytes (``patch_format``), the ``patcher``
(every check, then staging, switch, probation, commit, rollback), the configuration
``store`` (slots and a journal, written through ``disk``), ``reconfiguration`` (when each
step runs, inside the patch reserve of every frame) and ``boot`` (the one path back after a
reset). Above ``vm``, which it drives through a narrow interface.
"""
