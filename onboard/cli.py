"""The ``vvm`` command: the onboard simulator's user interface.

Stdlib only (argparse): the onboard side stands alone. The running simulator (`init`,
`load`, `run`, `status`) comes with the VVM; what is here reads images as the satellite
would and reports what it finds.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from onboard.image import ImageError, decode_image
from onboard.listing import listing


def _cmd_inspect(args: argparse.Namespace) -> int:
    try:
        data = Path(args.image).read_bytes()
    except OSError as exc:
        print(f"vvm: cannot read {args.image}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        image = decode_image(data)
    except ImageError as exc:
        where = f" at offset {exc.offset}" if exc.offset is not None else ""
        print(f"{args.image}{where}: rejected: {exc.message}", file=sys.stderr)
        print("  hint: images are written by `ccl compile`", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"name": image.name, "version": image.version,
                          "mission": image.mission, "hash": image.content_hash.hex(),
                          "bytes": len(data)}))
    else:
        print("\n".join(listing(image)))
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``vvm`` console script."""
    parser = argparse.ArgumentParser(prog="vvm", description="The onboard VVM simulator.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="decode an image file as the VVM would and list it")
    p.add_argument("image")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_inspect)
    args = parser.parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    main()
