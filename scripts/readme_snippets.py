"""Write each ```python block of a Markdown file as its own module, for mypy.

    python scripts/readme_snippets.py README.md OUT_DIR

Blocks are type-checked as written; a block that is deliberately not Python (``...`` shells,
output) belongs in another fence (``bash``, ``text``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def snippets(markdown: str) -> list[str]:
    """The bodies of the ```python fences, in order."""
    return [m.group(1) for m in BLOCK.finditer(markdown)]


def main(argv: list[str]) -> int:
    source, out = Path(argv[0]), Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    blocks = snippets(source.read_text(encoding="utf-8"))
    for i, code in enumerate(blocks, start=1):
        (out / f"readme_snippet_{i:02d}.py").write_text(code, encoding="utf-8")
    print(f"{len(blocks)} python snippet(s) from {source}", file=sys.stderr)
    return 0 if blocks else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
