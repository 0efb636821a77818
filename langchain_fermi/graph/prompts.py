"""The texts Fermi sends the optimizer: the Fermi and OPRO meta-prompts, and the parser that
reads the optimizer's new prompt back from square brackets (the initial profile prompt is
`langchain_fermi.questions.profile_prompt`, what the target sees).

Templates are module constants filled with ``str.format`` so they can be read, diffed and
overridden in one place. Everything here is pure (no I/O, no model calls).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from langchain_fermi.questions import NO_PROFILE, format_question, profile_addendum
from langchain_fermi.types import OPTION_LETTERS, MisalignedCase, Opinion, ScoredPrompt, UserProfile

__all__ = [
    "FERMI_ADDENDUM_META_PROMPT",
    "FERMI_CONTRAST_META_PROMPT",
    "FERMI_META_PROMPT",
    "INSERTION_MARKER",
    "OPRO_ADDENDUM_META_PROMPT",
    "OPRO_META_PROMPT",
    "build_meta_prompt",
    "format_contrast_memory",
    "format_demos",
    "format_fermi_memory",
    "format_opro_memory",
    "normalize_prompt",
    "parse_bracketed",
]

INSERTION_MARKER = "<INS>"
"""Where the new text goes in the demonstrations (OPRO's convention)."""


FERMI_META_PROMPT = """\
Your task is to write a text (an instruction) for an AI model so that it answers \
multiple-choice questions exactly as a specific person would, given that person's information. \
The model reads your text, then one question with lettered choices, and answers with one letter. \
Each answer is compared with the person's own answer: 1 if they are the same, 0 if not. \
The score of a text is the mean over {num_questions} questions (from 0 to 1, higher is better).

Personal information about the person:
{profile}

Below are previous texts with their scores, in ascending order of score, and the questions \
where the model's answer was mis-aligned with the person's answer.

{memory}
{demos}
Write a new text that is different from all the texts above and makes the model answer as this \
person would, so that it scores as high as possible. Learn from the mis-aligned answers: what \
about this person do they reveal? Reply with the new text only, in square brackets, and use \
square brackets nowhere else: a paragraph addressed to the model ("[You are ...]") that keeps \
what matters of the personal information and adds the beliefs, values and circumstances that \
the mis-aligned answers reveal about this person."""

OPRO_META_PROMPT = """\
Your task is to write an instruction for an AI model that answers multiple-choice questions. \
Each answer is scored against a reference answer; the score of an instruction is the fraction \
of answers that match (from 0 to 1, higher is better).

Below are previous instructions with their scores, in ascending order of score.

{memory}
{demos}
Write a new instruction that is different from all the instructions above and has a score as \
high as possible. Write the new instruction in square brackets, like [new instruction], and use \
square brackets nowhere else."""

FERMI_ADDENDUM_META_PROMPT = """\
Your task is to describe a person so that an AI model answers multiple-choice questions exactly \
as this person would. The model reads the person's personal information, then your description, \
then one question with lettered choices, and answers with one letter. Each answer is compared \
with the person's own answer: 1 if they are the same, 0 if not. The score of a description is \
the mean over {num_questions} questions (from 0 to 1, higher is better).

Personal information about the person (the model always reads it):
{profile}

Below are previous descriptions with their scores, in ascending order of score, and the \
questions where the model's answer was mis-aligned with the person's answer.

{memory}
{demos}
What do the person's own answers reveal about them, beyond the personal information? Look for a \
common thread: their attitudes, beliefs, values, trust or mistrust, hopes or worries, \
circumstances. Write a new description that is different from all the descriptions above and \
makes the model answer as this person would, so that it scores as high as possible: a paragraph \
of two to four sentences that starts with "This person". Reply with the paragraph only, in \
square brackets, and use square brackets nowhere else."""
"""Fermi's meta-prompt for ``prompt_form="addendum"``: the optimizer writes only what is added
to the profile prompt, so a small model cannot garble the profile (FERMI.md: a choice)."""

FERMI_CONTRAST_META_PROMPT = """\
Below are multiple-choice questions where an AI model's answer differed from a person's own \
answer. The model already reads the person's personal information and the best description of \
the person so far; it still answers these questions differently from the person:

{cases}

Descriptions of the person tried so far, with the share of {num_questions} questions the model \
then answered as the person did, in ascending order:

{memory}
Compare each of the person's answers with the model's answer. What do the person's answers have \
in common? What attitudes, beliefs, trust or mistrust, hopes or worries do they reveal? Write a \
new description of the person, different from the ones tried, in two to four sentences that \
start with "This person". Reply with the description only, in square brackets, and use square \
brackets nowhere else."""
"""Fermi's meta-prompt for ``meta_prompt_style="contrast"`` (addendum form only): the mis-aligned
answers of the best description come first and whole, the memory follows as texts and scores,
and neither the profile nor demonstrations are shown. Measured on planted users with
Qwen2.5-Coder-1.5B as optimizer: the Figure 8 layout leads a small model to restate the profile
("a well-educated woman ... Democrat"), this one to name what the answers share (README)."""

OPRO_ADDENDUM_META_PROMPT = """\
Your task is to write a text that is added to an AI model's instructions before it answers \
multiple-choice questions. Each answer is scored against a reference answer; the score of a \
text is the fraction of answers that match (from 0 to 1, higher is better).

Below are previous texts with their scores, in ascending order of score.

{memory}
{demos}
Write a new text, a paragraph of two to four sentences, that is different from all the texts \
above and has a score as high as possible. Write the new text in square brackets, like \
[new text], and use square brackets nowhere else."""

NOTHING_ADDED = "(nothing added: the personal information alone)"
"""How the addendum form shows the profile prompt itself in the memory."""

DEMOS_HEADER = (
    "Below are examples of the person's own answers. The text is inserted where "
    f"{INSERTION_MARKER} appears, before the question.\n"
)
ADDENDUM_DEMOS_HEADER = (
    "Below are examples of the person's own answers. The model reads the personal information "
    f"and your description where {INSERTION_MARKER} appears, before the question.\n"
)
OPRO_DEMOS_HEADER = (
    "Below are examples of the problems, with reference answers. The instruction is inserted "
    f"where {INSERTION_MARKER} appears, before the question.\n"
)


def normalize_prompt(text: str) -> str:
    """Whitespace-normalised form used to detect duplicate prompts."""
    return " ".join(text.split())


def _option(choices: Sequence[str], answer: str | None) -> str:
    if answer is None:
        return "(no valid answer)"
    if answer in choices:
        return f"{OPTION_LETTERS[list(choices).index(answer)]}. {answer}"
    return answer


def _case_line(case: MisalignedCase) -> str:
    options = " ".join(f"({OPTION_LETTERS[i]}) {c}" for i, c in enumerate(case.choices))
    return (
        f"- Q{case.index}: {case.question.strip()} Choices: {options}\n"
        f"  The person's answer: {_option(case.choices, case.user_answer)}. "
        f"The model's answer: {_option(case.choices, case.model_answer)}."
    )


def _case_lines(cases: Sequence[MisalignedCase], max_shown: int) -> list[str]:
    """The first ``max_shown`` cases in full, then how many more there are."""
    lines = [_case_line(c) for c in cases[:max_shown]]
    if len(cases) > max_shown:
        lines.append(f"- ... and {len(cases) - max_shown} more.")
    return lines


def _as_is(text: str) -> str:
    return text.strip()


def format_fermi_memory(
    memory: Sequence[ScoredPrompt],
    *,
    max_failures_shown: int = 10,
    render: Callable[[str], str] = _as_is,
) -> str:
    """Render the memory for Fermi's meta-prompt, in ascending order of score.

    ``memory`` is best first (as the graph keeps it). The first listed text (the lowest score)
    shows its mis-aligned cases in full, up to ``max_failures_shown``; each other text shows only
    the indices of the failures it shares with the first one and the number of its other
    failures, which keeps the prompt short (the paper's Figure 8, as reported). ``render``
    turns a prompt into what the optimizer is shown (the addendum form shows only the paragraph).
    """
    ascending = list(reversed(memory))
    if not ascending:
        return "(no previous texts)\n"
    blocks: list[str] = []
    first = ascending[0]
    first_ids = {c.opinion_id for c in first.misaligned}
    for n, sp in enumerate(ascending, start=1):
        head = f"Text {n}:\n{render(sp.text)}\nScore: {sp.score:.2f}"
        if n == 1:
            if not first.misaligned:
                body = "Mis-aligned questions: none."
            else:
                lines = [f"Mis-aligned questions ({len(first.misaligned)}):"]
                lines += _case_lines(first.misaligned, max_failures_shown)
                body = "\n".join(lines)
        else:
            shared = [c.index for c in sp.misaligned if c.opinion_id in first_ids]
            other = len(sp.misaligned) - len(shared)
            shared_txt = ", ".join(f"Q{i}" for i in shared) if shared else "none"
            body = (
                f"Mis-aligned questions shared with Text 1: {shared_txt}; "
                f"other mis-aligned questions: {other}."
            )
        blocks.append(f"{head}\n{body}\n")
    return "\n".join(blocks)


def format_opro_memory(
    memory: Sequence[ScoredPrompt], *, render: Callable[[str], str] = _as_is
) -> str:
    """Render the memory for the OPRO meta-prompt: texts and scores only, ascending."""
    ascending = list(reversed(memory))
    if not ascending:
        return "(no previous instructions)\n"
    return "\n".join(f"text:\n{render(sp.text)}\nscore:\n{sp.score:.2f}\n" for sp in ascending)


def format_contrast_memory(
    memory: Sequence[ScoredPrompt],
    *,
    max_failures_shown: int = 10,
    render: Callable[[str], str] = _as_is,
) -> tuple[str, str]:
    """The contrast meta-prompt's two blocks: the best prompt's mis-aligned cases, and the
    memory as texts and scores in ascending order. ``memory`` is best first."""
    if not memory:
        return "(none yet)", "(no previous descriptions)\n"
    lines = _case_lines(memory[0].misaligned, max_failures_shown)
    lines = lines or ["(none: the model already answers as the person)"]
    texts = "\n".join(
        f"Description {n}:\n{render(sp.text)}\nScore: {sp.score:.2f}\n"
        for n, sp in enumerate(reversed(memory), start=1)
    )
    return "\n".join(lines), texts


def addendum_renderer(user: UserProfile) -> Callable[[str], str]:
    """Show a prompt of the addendum form as its paragraph (`NOTHING_ADDED` for the profile
    prompt); any other prompt (a warm start) whole."""

    def render(text: str) -> str:
        added = profile_addendum(user, text)
        if added is None:
            return text.strip()
        return added or NOTHING_ADDED

    return render


def format_demos(demos: Sequence[Opinion], *, header: str = DEMOS_HEADER) -> str:
    """Render demonstrations with the insertion marker; empty string when there are none."""
    if not demos:
        return ""
    parts = [header]
    for o in demos:
        parts.append(
            f"{INSERTION_MARKER}\n{format_question(o.question, o.choices)}\n"
            f"Answer: {o.answer_letter} ({o.answer})\n"
        )
    return "\n".join(parts)


def build_meta_prompt(
    variant: str,
    memory: Sequence[ScoredPrompt],
    demos: Sequence[Opinion],
    *,
    user: UserProfile,
    num_questions: int,
    max_failures_shown: int = 10,
    opro_include_demos: bool = False,
    form: str = "full",
    style: str = "figure8",
) -> str:
    """The optimizer's prompt for ``variant`` ``"fermi"`` or ``"opro"``.

    The OPRO ablation shows texts and scores only: no failure cases, no personal framing and no
    profile (demonstrations only when ``opro_include_demos``, as in the original OPRO paper).
    ``form="addendum"``: the optimizer is shown, and writes, only the paragraph added to the
    profile prompt (`FermiConfig.prompt_form`). ``style="contrast"`` (Fermi, addendum form):
    `FERMI_CONTRAST_META_PROMPT` instead of the paper's Figure 8 layout
    (`FermiConfig.meta_prompt_style`).
    """
    if form not in ("full", "addendum"):
        msg = f"unknown prompt form {form!r}; expected 'addendum' or 'full'"
        raise ValueError(msg)
    if style not in ("figure8", "contrast"):
        msg = f"unknown meta-prompt style {style!r}; expected 'figure8' or 'contrast'"
        raise ValueError(msg)
    addendum = form == "addendum"
    if style == "contrast" and not addendum:
        msg = "meta-prompt style 'contrast' needs form='addendum' (it asks for a description)"
        raise ValueError(msg)
    render = addendum_renderer(user) if addendum else _as_is
    if variant == "opro":
        shown = demos if opro_include_demos else ()
        return (OPRO_ADDENDUM_META_PROMPT if addendum else OPRO_META_PROMPT).format(
            memory=format_opro_memory(memory, render=render),
            demos=format_demos(shown, header=OPRO_DEMOS_HEADER),
        )
    if variant == "fermi" and style == "contrast":
        cases, texts = format_contrast_memory(
            memory, max_failures_shown=max_failures_shown, render=render
        )
        return FERMI_CONTRAST_META_PROMPT.format(
            cases=cases, memory=texts, num_questions=num_questions
        )
    if variant == "fermi":
        return (FERMI_ADDENDUM_META_PROMPT if addendum else FERMI_META_PROMPT).format(
            num_questions=num_questions,
            profile=user.profile_text() or NO_PROFILE,
            memory=format_fermi_memory(
                memory, max_failures_shown=max_failures_shown, render=render
            ),
            demos=format_demos(demos, header=ADDENDUM_DEMOS_HEADER if addendum else DEMOS_HEADER),
        )
    msg = f"unknown variant {variant!r}; expected 'fermi' or 'opro'"
    raise ValueError(msg)


def parse_bracketed(reply: str | None) -> str | None:
    """Read the new prompt from the optimizer's reply.

    Returns the content of the last complete top-level ``[...]`` block, stripped; nested
    brackets stay inside it (``"[Be [very] brief]"`` -> ``"Be [very] brief"``). Degrades
    gracefully:

    * no complete block but an opening bracket that is never closed (a reply cut off by a
      token limit): the text after that bracket;
    * ``"[]"`` or only whitespace inside: ``""`` (the caller counts it as empty);
    * no opening bracket at all: ``None`` (the caller counts it as unparseable).
    """
    if not reply:
        return None
    blocks: list[str] = []
    depth = 0
    start = -1
    for i, ch in enumerate(reply):
        if ch == "[":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "]" and depth > 0:
            depth -= 1
            if depth == 0:
                blocks.append(reply[start + 1 : i])
    if blocks:
        return blocks[-1].strip()
    if depth > 0:  # only an unclosed block: take what follows its opening bracket
        return reply[start + 1 :].strip()
    return None
