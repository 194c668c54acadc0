"""The CCL language server (``ccl lsp``): the Language Server Protocol over stdio, with pygls.

What it answers, and with what:

- diagnostics as the author types (``didOpen``/``didChange``, debounced): the buffer is
  checked by the compiler's front end (``ccl.lsp.document``), so codes, spans and hints are
  those of ``ccl check``; checks run one at a time on a worker thread, and a result is
  published only if the buffer has not changed since (a newer check is on its way);
- on save (``didSave``): the verifier's refutations, each with its counterexample, proven
  in a process of its own (``python -m ccl.lsp.proofs``: off the typing path, with the
  proof cache); a newer save ends the process of a stale run;
- hover, go to definition and completion, from the last program of the buffer that
  checked (``ccl.lsp.names``).

This module imports pygls: only ``ccl lsp`` imports it (``cli.lsp_command``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace import TextDocument
from pygls.workspace.position_codec import ServerTextPosition, ServerTextRange

from ccl.diagnostics import Diagnostic, Span
from ccl.lsp.document import Checked, FrontEnd
from ccl.lsp.names import Name, Names, word_at

SERVER_VERSION = "0.1.0"

_COMPLETION_KINDS = {
    "const": lsp.CompletionItemKind.Constant, "param": lsp.CompletionItemKind.Property,
    "var": lsp.CompletionItemKind.Variable, "table": lsp.CompletionItemKind.Field,
    "fn": lsp.CompletionItemKind.Function, "task": lsp.CompletionItemKind.Event,
    "instr": lsp.CompletionItemKind.Method, "native": lsp.CompletionItemKind.Function,
    "local": lsp.CompletionItemKind.Variable, "builtin": lsp.CompletionItemKind.Function,
    "keyword": lsp.CompletionItemKind.Keyword, "type": lsp.CompletionItemKind.Struct,
}


def lsp_range(span: Span, doc: TextDocument | None = None) -> lsp.Range:
    """A CCL span (1-based, in characters, end column exclusive) as an LSP range (0-based,
    in the client's units: UTF-16 unless it asked for others) of ``doc``'s lines."""
    inside = ServerTextRange(ServerTextPosition(span.line - 1, span.col - 1),
                             ServerTextPosition(span.end_line - 1, span.end_col - 1))
    if doc is not None:
        return doc.range_to_client_units(inside)
    return lsp.Range(start=lsp.Position(line=inside.start.line, character=inside.start.character),
                     end=lsp.Position(line=inside.end.line, character=inside.end.character))


def lsp_diagnostic(d: Diagnostic, path: Path, doc: TextDocument, source: str = "ccl"
                   ) -> lsp.Diagnostic:
    """A compiler or verifier diagnostic of the buffer ``path``, as the editor shows it:
    the message, its notes (a counterexample) and its hint; one in another file (a VMlet
    the configuration uses) is shown at the top of the buffer, with where it is."""
    here = d.span is not None and Path(d.span.file).resolve() == path.resolve()
    where = "" if here or d.span is None else f"{d.span}: "
    text = "\n".join([f"{where}{d.message}", *(f"note: {n}" for n in d.notes),
                      *([f"hint: {d.hint}"] if d.hint else [])])
    span_range = lsp_range(d.span, doc) if here and d.span is not None else \
        lsp.Range(start=lsp.Position(line=0, character=0),
                  end=lsp.Position(line=0, character=0))
    severity = lsp.DiagnosticSeverity.Warning if d.severity == "warning" \
        else lsp.DiagnosticSeverity.Error
    return lsp.Diagnostic(range=span_range, message=text, severity=severity, code=d.code,
                          source=source)


def diagnostic_of_json(data: dict[str, object]) -> Diagnostic:
    """A diagnostic back from its JSON form (``Diagnostic.to_json``)."""
    span = None
    if "line" in data:
        span = Span(str(data["file"]), int(str(data["line"])), int(str(data["column"])),
                    int(str(data["end_line"])), int(str(data["end_column"])))
    notes = data.get("notes") or []
    return Diagnostic(str(data.get("code", "")), str(data.get("message", "")), span,
                      str(data.get("hint", "")), str(data.get("severity", "error")),
                      tuple(str(n) for n in notes) if isinstance(notes, list) else ())


def _markup(n: Name) -> lsp.MarkupContent:
    """What hover and completion show of a name: its declaration, then its doc."""
    text = f"```ccl\n{n.detail}\n```" + (f"\n\n{n.doc}" if n.doc else "")
    return lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text)


class CclLanguageServer(LanguageServer):
    """The server: the state of every open buffer, and the protocol's handlers."""

    def __init__(self, mission_dirs: tuple[Path, ...] = (), debounce_s: float = 0.03) -> None:
        super().__init__("ccl", SERVER_VERSION,
                         text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental)
        self.mission_dirs = mission_dirs
        self.debounce_s = debounce_s
        self.front = FrontEnd(mission_dirs)
        # One check at a time: the compiler (and its caches) is shared between checks.
        self.checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ccl-check")
        self.pending: dict[str, asyncio.Task[None]] = {}  # uri -> its scheduled check
        # uri -> its last program that checked (and its mission), and the names in it, made
        # when hover, definition or completion first asks (not on the typing path)
        self.checked_ok: dict[str, Checked] = {}
        self.names: dict[str, Names] = {}
        self.checked: dict[str, list[lsp.Diagnostic]] = {}  # uri -> front-end diagnostics
        self.refuted: dict[str, list[lsp.Diagnostic]] = {}  # uri -> the last save's proofs
        self.proof_runs: dict[str, asyncio.Task[None]] = {}  # uri -> the run proving it
        self.proving: dict[str, asyncio.subprocess.Process] = {}  # uri -> its process
        self.background: set[asyncio.Task[None]] = set()

    # -- checking as the author types

    def schedule_check(self, uri: str, delay: float) -> None:
        """Check ``uri`` after ``delay`` seconds, replacing a check not yet started."""
        old = self.pending.pop(uri, None)
        if old is not None:
            old.cancel()
        self.pending[uri] = asyncio.ensure_future(self._check_later(uri, delay))

    async def _check_later(self, uri: str, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        path = _path_of(uri)
        if path is None:
            return
        doc = self.workspace.get_text_document(uri)
        version, text = doc.version, doc.source
        loop = asyncio.get_running_loop()
        try:
            result: Checked = await loop.run_in_executor(
                self.checker, self.front.check, path, text, list(self._other_buffers(uri)))
        except Exception as exc:  # a bug of the compiler: say so, keep serving the others
            self.front.forget()
            self.log(lsp.MessageType.Error, f"ccl lsp: checking {path} failed: "
                     f"{type(exc).__name__}: {exc} (please report it)")
            return
        if self.workspace.get_text_document(uri).version != version:
            return  # typed since: the check of the newer text is scheduled
        if result.program is not None:
            self.checked_ok[uri] = result
            self.names.pop(uri, None)
        doc = self.workspace.get_text_document(uri)
        self.checked[uri] = [lsp_diagnostic(d, path, doc) for d in result.diagnostics]
        self.publish(uri, version)

    def names_of(self, uri: str) -> Names | None:
        """The names of the last program of ``uri`` that checked (None before one did)."""
        if uri not in self.names and uri in self.checked_ok:
            good = self.checked_ok[uri]
            assert good.program is not None
            self.names[uri] = Names(good.program, good.mission)
        return self.names.get(uri)

    def _other_buffers(self, uri: str) -> Iterable[tuple[Path, str]]:
        for other, doc in list(self.workspace.text_documents.items()):
            path = _path_of(other)
            if other != uri and path is not None:
                yield path, doc.source

    def publish(self, uri: str, version: int | None = None) -> None:
        """Send the buffer's diagnostics: the front end's and the last save's proofs."""
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
            uri=uri, diagnostics=[*self.checked.get(uri, []), *self.refuted.get(uri, [])],
            version=version))

    def changed(self, uri: str, delay: float) -> None:
        """``uri`` changed: check it; if it is a VMlet, the configurations using it too."""
        text = self.workspace.get_text_document(uri).source
        if _is_vmlet(text):
            self.front.forget()
            for other in list(self.workspace.text_documents):
                if other != uri:
                    self.schedule_check(other, delay)
        self.schedule_check(uri, delay)

    # -- proving on save

    async def prove(self, uri: str) -> None:
        """Prove the saved file ``uri`` in a process of its own; a newer save (or closing
        the file) cancels this run, which then ends its process."""
        path = _path_of(uri)
        me = asyncio.current_task()
        if path is None or me is None:
            return
        await self.cancel_proof(uri, "a newer save")
        self.proof_runs[uri] = me
        args = [a for d in self.mission_dirs for a in ("--missions", str(d))]
        # (cancelled while the process starts, asyncio ends it: nothing is left behind)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ccl.lsp.proofs", *args, str(path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        self.proving[uri] = proc
        try:
            out, err = await proc.communicate()
        finally:
            if proc.returncode is None:  # cancelled: a stale run
                proc.kill()
                await proc.wait()
            if self.proving.get(uri) is proc:
                del self.proving[uri]
        if self.proof_runs.get(uri) is me:
            del self.proof_runs[uri]
        try:
            result = json.loads(out)
        except ValueError:
            self.log(lsp.MessageType.Error, f"ccl verify {path}: the prover failed "
                     f"(exit {proc.returncode}): {err.decode(errors='replace')[-400:]}")
            return
        doc = self.workspace.get_text_document(uri)
        self.refuted[uri] = [lsp_diagnostic(diagnostic_of_json(d), path, doc, "ccl verify")
                             for d in result["diagnostics"]]
        self.publish(uri)
        self.log(lsp.MessageType.Info, f"ccl verify {path.name}: {result['status']}"
                 + (" (kept proof)" if result.get("reused") else ""))

    async def cancel_proof(self, uri: str, why: str) -> None:
        """Cancel the run proving ``uri`` if there is one (its result would be stale), and
        wait until its process has ended."""
        run = self.proof_runs.pop(uri, None)
        if run is None or run.done() or run is asyncio.current_task():
            return
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        self.log(lsp.MessageType.Info, f"ccl verify: stale run cancelled ({why})")

    def log(self, kind: lsp.MessageType, message: str) -> None:
        self.window_log_message(lsp.LogMessageParams(type=kind, message=message))

    def shutdown(self) -> None:
        """Stop: end the provers still running, then pygls's own shutdown."""
        for proc in self.proving.values():
            if proc.returncode is None:
                proc.kill()
        self.proving.clear()
        self.checker.shutdown(wait=False, cancel_futures=True)
        super().shutdown()


def _path_of(uri: str) -> Path | None:
    """The file behind ``uri`` (None for an unsaved, untitled buffer)."""
    path = to_fs_path(uri) if uri.startswith("file:") else None
    return Path(path) if path else None


def _is_vmlet(text: str) -> bool:
    head = text.lstrip()[:4000]
    return any(line.split("//")[0].strip().startswith("vmlet ")
               for line in head.splitlines()[:40])


def server(mission_dirs: tuple[Path, ...] = (), debounce_s: float = 0.03) -> CclLanguageServer:
    """The language server with its handlers registered."""
    ls = CclLanguageServer(mission_dirs, debounce_s)

    @ls.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: CclLanguageServer, params: lsp.DidOpenTextDocumentParams) -> None:
        ls.changed(params.text_document.uri, 0)

    @ls.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CclLanguageServer, params: lsp.DidChangeTextDocumentParams) -> None:
        ls.changed(params.text_document.uri, ls.debounce_s)

    @ls.feature(lsp.TEXT_DOCUMENT_DID_SAVE, lsp.SaveOptions(include_text=False))
    def did_save(ls: CclLanguageServer, params: lsp.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.front.forget()  # files on disk changed: VMlets and profiles are read again
        ls.changed(uri, 0)
        task = asyncio.ensure_future(ls.prove(uri))
        ls.background.add(task)
        task.add_done_callback(ls.background.discard)

    @ls.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    async def did_close(ls: CclLanguageServer, params: lsp.DidCloseTextDocumentParams
                        ) -> None:
        uri = params.text_document.uri
        pending = ls.pending.pop(uri, None)
        if pending is not None:
            pending.cancel()
        await ls.cancel_proof(uri, "closed")
        for state in (ls.checked_ok, ls.names, ls.checked, ls.refuted):
            state.pop(uri, None)
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    def name_at(uri: str, pos: lsp.Position) -> tuple[Name, lsp.Range] | None:
        """The name at the client's position ``pos`` of ``uri``, and its range there."""
        names = ls.names_of(uri)
        doc = ls.workspace.get_text_document(uri)
        at = doc.position_from_client_units(pos)  # the client counts UTF-16 units
        word, start = word_at(doc.source, at.line, at.character)
        if names is None or not word:
            return None
        found = names.lookup(word, at.line + 1)
        if found is None:
            return None
        return found, doc.range_to_client_units(ServerTextRange(
            ServerTextPosition(at.line, start), ServerTextPosition(at.line, start + len(word))))

    @ls.feature(lsp.TEXT_DOCUMENT_HOVER)
    def hover(ls: CclLanguageServer, params: lsp.HoverParams) -> lsp.Hover | None:
        found = name_at(params.text_document.uri, params.position)
        if found is None:
            return None
        name, where = found
        return lsp.Hover(contents=_markup(name), range=where)

    @ls.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: CclLanguageServer, params: lsp.DefinitionParams
                   ) -> lsp.Location | None:
        found = name_at(params.text_document.uri, params.position)
        if found is None or found[0].span is None:
            return None
        span = found[0].span
        uri = from_fs_path(str(Path(span.file).resolve()))
        if not uri:
            return None
        opened = ls.workspace.text_documents.get(uri)  # an open file: in the client's units
        return lsp.Location(uri=uri, range=lsp_range(span, opened))

    @ls.feature(lsp.TEXT_DOCUMENT_COMPLETION)
    def completion(ls: CclLanguageServer, params: lsp.CompletionParams
                   ) -> lsp.CompletionList:
        names = ls.names_of(params.text_document.uri)
        items = [] if names is None else [
            lsp.CompletionItem(label=n.name, kind=_COMPLETION_KINDS.get(n.kind),
                               detail=n.detail, documentation=_markup(n))
            for n in names.visible(params.position.line + 1)]
        return lsp.CompletionList(is_incomplete=False, items=items)

    return ls
