"""`FermiStore`: the only code that touches Chroma (embedded folder or server)."""

from langchain_fermi.store.client import default_store_path
from langchain_fermi.store.dump import DUMP_FORMAT, result_prompts
from langchain_fermi.store.fermi_store import FermiStore
from langchain_fermi.store.rows import UserRecord
from langchain_fermi.store.snapshot import UserSnapshot

__all__ = [
    "DUMP_FORMAT",
    "FermiStore",
    "UserRecord",
    "UserSnapshot",
    "default_store_path",
    "result_prompts",
]
