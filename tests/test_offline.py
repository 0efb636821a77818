"""The default model, scoring, embeddings and token counts work with every network call refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from offline_guard import run_offline

OFFLINE_RUN = """
import json, os, sys
os.environ.pop("TIKTOKEN_CACHE_DIR", None)
from langchain_fermi.models import get_chat_model
from langchain_fermi.scoring import AnswerScorer
from langchain_fermi.models.embeddings import MiniLMEmbeddings
from langchain_fermi.tokens import count_tokens
from langchain_fermi.types import Opinion
import tiktoken

model = get_chat_model()  # SmolLM2 from its PyPI package
reply = model.invoke("Name a colour.", max_tokens=8)
op = Opinion(id="q", question="Do you own a gun?", choices=["Yes", "No"], answer="No")
logit = AnswerScorer(model).score([("You are a farmer from Texas.", op)])[0]
parsed = AnswerScorer(model, method="parse").score([("You are a farmer from Texas.", op)])[0]
vec = MiniLMEmbeddings().embed_query("Do you own a gun?")
print(json.dumps({
    "reply": reply.content,
    "logit_index": logit.index,
    "logit_method": logit.method,
    "parse_index": parsed.index,
    "dim": len(vec),
    "norm": sum(x * x for x in vec) ** 0.5,
    "cl100k": count_tokens("tiktoken is great!", "cl100k_base"),
    "o200k": count_tokens("tiktoken is great!", "o200k_base"),
    "gpt4o": tiktoken.encoding_for_model("gpt-4o-mini").name,
    "tiktoken_dir": os.environ["TIKTOKEN_CACHE_DIR"],
}))
"""


@pytest.mark.local_model
def test_everything_runs_with_the_network_refused(tmp_path: Path) -> None:
    # An empty cache dir: the tiktoken files must be produced offline too.
    proc = run_offline(OFFLINE_RUN, env={"FERMI_CACHE_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["reply"].strip()
    assert out["logit_method"] == "logprobs" and out["logit_index"] in (0, 1)
    assert out["parse_index"] in (0, 1)
    assert out["dim"] == 384 and abs(out["norm"] - 1.0) < 1e-4
    assert (out["cl100k"], out["o200k"]) == (6, 6)
    assert out["gpt4o"] == "o200k_base"
    assert out["tiktoken_dir"] == str(tmp_path / "tiktoken")


def test_guard_really_blocks() -> None:
    proc = run_offline(
        "import urllib.request\nurllib.request.urlopen('https://pypi.org', timeout=5)\n"
    )
    assert proc.returncode != 0
    assert "network access refused" in proc.stderr
