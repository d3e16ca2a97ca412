"""tagsweep: count IT assets with RFID and barcode readers, reconcile against the sources.

The package has one import root; its subpackages are the top-level folders of the
repository (``daemon``, ``engine``, ``drivers``, ``config``, ``simulators``), linked in
here so every import reads ``tagsweep.<folder>``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tagsweep")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
