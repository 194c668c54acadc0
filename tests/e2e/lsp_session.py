"""A real ``ccl lsp`` process and pygls's language client talking to it over stdio.

Used by tests/e2e/test_lsp.py and by benchmarks/lsp_latency.py (loaded by path there): the
client sends what an editor sends (initialize, didOpen, didChange, didSave, hover...) and
records every ``publishDiagnostics`` and ``logMessage`` the server sends back, with the
time it arrived.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient
from pygls.uris import from_fs_path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Published:
    """One ``publishDiagnostics`` as it arrived (``at``: ``time.perf_counter()``)."""

    uri: str
    version: int | None
    diagnostics: list[lsp.Diagnostic]
    at: float


class Session:
    """``ccl lsp`` started as a process (the console script of this interpreter)."""

    def __init__(self) -> None:
        self.client = LanguageClient("ccl-tests", "1")
        self.published: list[Published] = []
        self.logs: list[str] = []
        self._arrived = asyncio.Event()
        self.versions: dict[str, int] = {}

        @self.client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def _diagnostics(params: lsp.PublishDiagnosticsParams) -> None:
            self.published.append(Published(params.uri, params.version,
                                            list(params.diagnostics), time.perf_counter()))
            self._arrived.set()

        @self.client.feature(lsp.WINDOW_LOG_MESSAGE)
        def _log(params: lsp.LogMessageParams) -> None:
            self.logs.append(params.message)
            self._arrived.set()

    async def start(self, *args: str, env: dict[str, str] | None = None) -> None:
        """Start ``ccl lsp ARGS`` in the repository and initialize it."""
        ccl = str(Path(sys.executable).with_name("ccl"))
        await self.client.start_io(ccl, "lsp", *args, cwd=str(ROOT),
                                   env={**os.environ, **(env or {})})
        await self.client.initialize_async(lsp.InitializeParams(
            capabilities=lsp.ClientCapabilities(), root_uri=from_fs_path(str(ROOT))))
        self.client.initialized(lsp.InitializedParams())

    async def stop(self) -> None:
        """Shut the server down as an editor does, and wait for it to exit."""
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()

    # -- what an editor sends

    def open(self, path: Path, text: str | None = None) -> str:
        """Open ``path`` (its text on disk unless ``text``); its URI."""
        uri = str(from_fs_path(str(path.resolve())))
        self.versions[uri] = 1
        self.client.text_document_did_open(lsp.DidOpenTextDocumentParams(
            text_document=lsp.TextDocumentItem(uri=uri, language_id="ccl", version=1,
                                text=path.read_text() if text is None else text)))
        return uri

    def replace(self, uri: str, line: int, start: int, end: int, text: str) -> int:
        """Replace characters ``start .. end`` of 0-based ``line`` by ``text`` (an
        incremental change); the document's new version."""
        self.versions[uri] += 1
        where = lsp.Range(start=lsp.Position(line=line, character=start),
                          end=lsp.Position(line=line, character=end))
        self.client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
            content_changes=[lsp.TextDocumentContentChangePartial(range=where, text=text)]))
        return self.versions[uri]

    def save(self, uri: str) -> None:
        self.client.text_document_did_save(lsp.DidSaveTextDocumentParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri)))

    def close(self, uri: str) -> None:
        self.client.text_document_did_close(lsp.DidCloseTextDocumentParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri)))

    async def hover(self, uri: str, line: int, character: int) -> lsp.Hover | None:
        return await self.client.text_document_hover_async(lsp.HoverParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=lsp.Position(line=line, character=character)))

    async def definition(self, uri: str, line: int, character: int) -> Any:
        return await self.client.text_document_definition_async(lsp.DefinitionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=lsp.Position(line=line, character=character)))

    async def completion(self, uri: str, line: int, character: int) -> Any:
        return await self.client.text_document_completion_async(lsp.CompletionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=lsp.Position(line=line, character=character)))

    # -- what the server sends back

    async def diagnostics(self, uri: str, after: int = 0,
                          matching: Callable[[Published], bool] = lambda p: True,
                          timeout: float = 60.0) -> Published:
        """The first diagnostics of ``uri`` published as the ``after``-th message or
        later that satisfy ``matching``."""
        deadline = time.monotonic() + timeout
        seen = after
        while True:
            for p in self.published[seen:]:
                if p.uri == uri and matching(p):
                    return p
            seen = len(self.published)
            self._arrived.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching diagnostics for {uri} in {timeout} s; "
                                   f"got {self.published[after:]}; logs {self.logs}")
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                pass

    async def log(self, containing: str, timeout: float = 60.0) -> str:
        """The first log message containing ``containing``."""
        deadline = time.monotonic() + timeout
        while True:
            for m in self.logs:
                if containing in m:
                    return m
            self._arrived.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no log message with {containing!r}: {self.logs}")
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                pass
