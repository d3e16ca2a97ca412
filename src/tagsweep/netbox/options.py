"""The command-line option every NetBox command shares: where the API token is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

TokenFileOption = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        help="File holding the NetBox API token (v1, or v2 nbt_...); default $NETBOX_TOKEN. "
        "Never give a token on the command line.",
    ),
]
