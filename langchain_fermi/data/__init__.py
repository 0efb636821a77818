"""Loaders for users and opinions: our JSON / JSONL / CSV format, Pew ATP waves, GlobalOpinionQA.

pandas and pyreadstat (the ``data`` extra) are imported only by `load_pew_atp`.
"""

from langchain_fermi.data.global_opinions import (
    country_user_id,
    load_global_opinionqa,
    majority_index,
    opinion_id_for,
)
from langchain_fermi.data.pew import (
    REFUSED_CODE,
    PewWaveFiles,
    detect_wave,
    find_wave_files,
    load_pew_atp,
)
from langchain_fermi.data.pew_columns import (
    PEW_DEMOGRAPHICS,
    PewDemographic,
    PewLoadReport,
    PewUsers,
    is_nonresponse,
)
from langchain_fermi.data.splits import DATA_DIR_ENV, UserSplit, find_shared_data_dir, split_user
from langchain_fermi.data.users import CSV_COLUMNS, UserFileFormat, load_users, save_users

__all__ = [
    "CSV_COLUMNS",
    "DATA_DIR_ENV",
    "PEW_DEMOGRAPHICS",
    "REFUSED_CODE",
    "PewDemographic",
    "PewLoadReport",
    "PewUsers",
    "PewWaveFiles",
    "UserFileFormat",
    "UserSplit",
    "country_user_id",
    "detect_wave",
    "find_shared_data_dir",
    "find_wave_files",
    "is_nonresponse",
    "load_global_opinionqa",
    "load_pew_atp",
    "load_users",
    "majority_index",
    "opinion_id_for",
    "save_users",
    "split_user",
]
