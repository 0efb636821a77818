"""`FermiStore`: the only code that touches Chroma (embedded folder or server)."""

from langchain_fermi.store.client import default_store_path
from langchain_fermi.store.fermi_store import FermiStore
from langchain_fermi.store.records import DUMP_FORMAT, UserSnapshot, result_prompts

__all__ = ["DUMP_FORMAT", "FermiStore", "UserSnapshot", "default_store_path", "result_prompts"]
