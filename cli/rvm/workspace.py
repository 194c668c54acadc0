"""What a ``vvm repl`` session has typed, as CCL source: the workspace.

A session runs one configuration, ``rvm``, that it writes itself: the declarations typed at
the prompt (``fn``, ``param``, ``var``, ``table``, ``const``, ``task``, ``rule``, ``on
apply``), in the order they were first typed; a declaration typed again under the same
name replaces the old one in place (that is how one redefines). Instructions (``instr``)
go into the session's own VMlet, ``rvm_instrs``, which builds on the mission VMlets the
session started on (``uses``); a whole VMlet typed as ``vmlet NAME { ... }`` becomes the
file ``vmlets/NAME.ccl``. The configuration uses ``rvm_instrs`` (or, while it holds no
instruction, the mission VMlets directly) and every typed VMlet.

Every change gets a new number, ``counter``: the configuration's version, and the version
of the VMlet it changed. A ``Snapshot`` is what the board runs after a change; the history
of snapshots is what ``:undo`` sends back. The workspace is saved in the state directory
(``rvm/session.json``) so that a later ``vvm repl STATE`` goes on where this one stopped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

CONFIG_NAME = "rvm"
INSTRS_VMLET = "rvm_instrs"
SESSION_FILE = "session.json"
SESSION_FORMAT = 1

_NAMED = re.compile(r"\s*(fn|param|var|table|const|task)\s+([A-Za-z_]\w*)")
_INSTR = re.compile(r"\s*instr\s+([A-Za-z_]\w*)")
_VMLET = re.compile(r"\s*vmlet\s+([A-Za-z_]\w*)\s*\{(.*)\}\s*\Z", re.S)
_RULE = re.compile(r"\s*rule\b")
_ON_APPLY = re.compile(r"\s*on\s+apply\b")


class NotADeclaration(ValueError):
    """Typed text that is neither a declaration the session knows nor a command."""


@dataclass(frozen=True)
class Item:
    """One typed declaration: its kind, its name (what redefining it matches) and text."""

    kind: str
    name: str
    text: str


@dataclass(frozen=True)
class TypedVmlet:
    """A VMlet typed whole at the prompt: its name, version and body."""

    name: str
    version: int
    body: str


@dataclass(frozen=True)
class Snapshot:
    """The session's sources after one change (what the board runs)."""

    config_version: int = 0
    items: tuple[Item, ...] = ()
    instrs: tuple[Item, ...] = ()
    instrs_version: int = 0
    vmlets: tuple[TypedVmlet, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.items or self.instrs or self.vmlets)

    def with_entry(self, text: str, number: int) -> Snapshot:
        """This snapshot with ``text`` (one declaration, an ``instr`` or a ``vmlet NAME {
        }`` block) added or put in place of the one of the same name; change ``number``.
        Raises ``NotADeclaration``."""
        text = text.strip()
        vmlet = _VMLET.match(text)
        if vmlet is not None:
            typed = TypedVmlet(vmlet.group(1), number, _dedent(vmlet.group(2)))
            return replace(self, config_version=number,
                           vmlets=_put(self.vmlets, typed, lambda v: v.name == typed.name))
        instr = _INSTR.match(text)
        if instr is not None:
            item = Item("instr", instr.group(1), text)
            return replace(self, config_version=number, instrs_version=number,
                           instrs=_put(self.instrs, item, lambda i: i.name == item.name))
        item = declaration(text)
        return replace(self, config_version=number,
                       items=_put(self.items, item,
                                  lambda i: (i.kind, i.name) == (item.kind, item.name)))

    def names(self) -> dict[str, str]:
        """Every name typed, with its text (``:describe``)."""
        out = {i.name: i.text for i in (*self.items, *self.instrs) if i.name}
        out.update({v.name: f"vmlet {v.name} {{\n{v.body}\n}}" for v in self.vmlets})
        return out

    def to_json(self) -> dict[str, Any]:
        return {"config_version": self.config_version, "instrs_version": self.instrs_version,
                "items": [vars(i) for i in self.items],
                "instrs": [vars(i) for i in self.instrs],
                "vmlets": [vars(v) for v in self.vmlets]}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Snapshot:
        return Snapshot(data["config_version"], tuple(Item(**i) for i in data["items"]),
                        tuple(Item(**i) for i in data["instrs"]), data["instrs_version"],
                        tuple(TypedVmlet(**v) for v in data["vmlets"]))


def declaration(text: str) -> Item:
    """The configuration declaration ``text`` is, by kind and name (a rule is named by its
    text, ``on apply`` has no name); ``NotADeclaration`` if it is none."""
    named = _NAMED.match(text)
    if named is not None:
        return Item(named.group(1), named.group(2), text)
    if _RULE.match(text):
        return Item("rule", " ".join(text.split()), text)
    if _ON_APPLY.match(text):
        return Item("on apply", "", text)
    raise NotADeclaration(text.split(None, 1)[0] if text.split() else "")


def _put(items: tuple[Any, ...], new: Any, same: Any) -> tuple[Any, ...]:
    """``items`` with ``new`` in place of the first that is ``same``, or appended."""
    for i, old in enumerate(items):
        if same(old):
            return (*items[:i], new, *items[i + 1:])
    return (*items, new)


def _dedent(body: str) -> str:
    lines = [line.rstrip() for line in body.strip("\n").splitlines()]
    lines = [line for line in lines if line.strip()] and lines
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()),
                 default=0)
    return "\n".join(line[indent:] for line in lines)


def sources(snapshot: Snapshot, mission: str, base: tuple[str, ...],
            application: tuple[str, int] | None = None) -> dict[str, str]:
    """The source files of ``snapshot`` (path relative to the workspace -> text), on the
    mission VMlets ``base``; the configuration is ``application`` (name, percent of the
    share) of a board if given, so it is proven within that part."""
    files: dict[str, str] = {}
    used = [v.name for v in snapshot.vmlets]
    if snapshot.instrs:
        head = [f"vmlet {INSTRS_VMLET} version {snapshot.instrs_version};",
                f"mission {mission};"]
        head += [f"uses {', '.join(base)};"] if base else []
        files[f"vmlets/{INSTRS_VMLET}.ccl"] = "\n".join(
            ["// written by vvm repl: the instructions typed in the session", *head, "",
             *(i.text for i in snapshot.instrs)]) + "\n"
        used.insert(0, INSTRS_VMLET)
    else:
        used[:0] = [b for b in base if b not in used]
    for v in snapshot.vmlets:
        files[f"vmlets/{v.name}.ccl"] = (f"// written by vvm repl: a VMlet typed in the "
                                         f"session\nvmlet {v.name} version {v.version};\n"
                                         f"mission {mission};\n{v.body}\n")
    head = [f"mission {mission};", f"config {CONFIG_NAME} version "
            f"{max(snapshot.config_version, 1)};"]
    if application is not None:
        head.append(f"application {application[0]} share {application[1]} %;")
    head += [f"uses {', '.join(dict.fromkeys(used))};"] if used else []
    files["config.ccl"] = "\n".join(["// written by vvm repl: the session's configuration",
                                     *head, "", *(i.text for i in snapshot.items)]) + "\n"
    return files


def write_sources(directory: Path, files: dict[str, str]) -> Path:
    """Write ``files`` under ``directory`` (made anew); returns the configuration's path."""
    shutil.rmtree(directory, ignore_errors=True)  # no file of an older snapshot stays
    (directory / "vmlets").mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory / "config.ccl"


@dataclass
class Workspace:
    """The session's state on the ground: mission, base VMlets, the change counter, what
    runs now (``current``, None until the session's first change is on board) and the
    snapshots ``:undo`` goes back to."""

    directory: Path
    mission: str
    base: tuple[str, ...]
    counter: int = 0
    current: Snapshot | None = None
    history: list[Snapshot] = field(default_factory=list)
    #: the board application the session changes (name, percent of the share); None: the
    #: default one, with the whole share
    application: tuple[str, int] | None = None

    @staticmethod
    def open(directory: Path, mission: str, base: tuple[str, ...],
             application: tuple[str, int] | None = None) -> Workspace:
        """The workspace saved in ``directory``, or a new one for ``mission`` on
        ``base`` (for ``application`` of a board, if given)."""
        try:
            data = json.loads((directory / SESSION_FILE).read_text())
        except FileNotFoundError:
            return Workspace(directory, mission, base, application=application)
        current = data["current"]
        return Workspace(directory, data["mission"], tuple(data["base"]), data["counter"],
                         Snapshot.from_json(current) if current is not None else None,
                         [Snapshot.from_json(s) for s in data["history"]], application)

    def sources(self, snapshot: Snapshot) -> dict[str, str]:
        return sources(snapshot, self.mission, self.base, self.application)

    def save(self) -> None:
        """Save the workspace (atomically) and the sources of what runs, under ``src/``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        data = {"format": SESSION_FORMAT, "mission": self.mission, "base": list(self.base),
                "counter": self.counter,
                "current": self.current.to_json() if self.current is not None else None,
                "history": [s.to_json() for s in self.history]}
        path = self.directory / SESSION_FILE
        path.with_suffix(".new").write_text(json.dumps(data, indent=1))
        os.replace(path.with_suffix(".new"), path)
        if self.current is not None:
            write_sources(self.directory / "src", self.sources(self.current))
