"""What an editor asks of CCL (``ccl lsp``), answered by the compiler and the verifier.

``document`` checks an editor's buffer with the real front end (``ccl.driver.Compiler``
reading the buffer instead of the file) and keeps the last program that checked; ``names``
answers hover, go-to-definition and completion from that program and its mission profile;
``proofs`` runs the verifier on a saved file in a process of its own (off the typing path).
None of them speaks the protocol: ``cli.lsp_server`` does, with pygls.
"""
