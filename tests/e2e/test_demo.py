"""The demo's examples, pasted into a shell as a user would, against a real `serve`: each gives
the answer the demo's text predicts, and pasted again, the answer its text says a re-paste gets."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import asyncpg
import msgspec

from lead_ledger.cli_admin import demo
from tests.factories import ADMIN
from tests.support import fresh_minute, serve_process, stop, until_ready

PREDICTION = "# -> "
SEPARATOR = "@@@ end of example @@@"


def examples(text: str) -> list[tuple[str, str]]:
    """Each example's commands and the answer predicted for them (`# -> ...`)."""
    start = text.index("\n# Flexydial")
    pairs: list[tuple[str, str]] = []
    commands: list[str] = []
    for line in text[start:].splitlines():
        if line.startswith(PREDICTION):
            pairs.append(("\n".join(commands), line.removeprefix(PREDICTION)))
            commands = []
        elif line and not line.startswith("#"):
            commands.append(line)
    assert commands == [], "commands without a predicted answer"
    return pairs


def pattern(prediction: str) -> re.Pattern[str]:
    """A prediction as a pattern: `<name>` stands for a value, `...` for the rest."""
    escaped = re.escape(prediction)
    escaped = re.sub(r"<\w+>", r"[^\"]+?", escaped).replace(r"\.\.\.", ".*")
    return re.compile(escaped, re.DOTALL)


def paste(pairs: list[tuple[str, str]], workdir: Path) -> list[str]:
    """Run every example in one bash, as pasted into one terminal; each one's output."""
    script = "".join(f"{commands}\necho\necho '{SEPARATOR}'\n" for commands, _ in pairs)
    done = subprocess.run(  # noqa: S603 - our own script, run by the system's bash
        ["/bin/bash", "-c", script],
        check=False,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    outputs = [out.strip() for out in done.stdout.split(SEPARATOR)[:-1]]
    assert len(outputs) == len(pairs), done.stdout
    return outputs


async def test_every_demo_example_answers_as_its_text_says_twice(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    """First paste: each answer matches its `# -> ` line. Second paste: AddCampaignData finds
    the number (checkDuplicate), the file upload meets the per-minute limit, the archive finds
    its copy equal, and the jtel import finds its contact by UserData, as the text explains."""
    served = serve_process(database_url)
    try:
        await until_ready(served)
        async with pool.acquire() as conn:
            text = await demo(conn, ADMIN, served.base_url)
        pairs = examples(text)
        assert len(pairs) == 7
        await fresh_minute()  # both pastes within one rate-limit minute, as the text assumes
        first = paste(pairs, tmp_path)
        for (_, prediction), output in zip(pairs, first, strict=True):
            assert pattern(prediction).fullmatch(output), (prediction, output)
        second = paste(pairs, tmp_path)
    finally:
        stop(served)

    answers = [msgspec.json.decode(output) for output in second]
    assert answers[1] == {"status": "SUCCESS", "message": "Number Already Exist"}
    assert answers[2] == {"status": "error", "message": "Request limit exhausted"}
    assert (answers[3]["select_count"], answers[3]["insert_count"]) == (1, 0)
    first_id = msgspec.json.decode(first[4])["records"][0]["ID"]
    assert answers[4]["records"][0]["ID"] == first_id
    for said in ("Number Already Exist", "Request limit exhausted", '"insert_count":0'):
        assert said in text
    assert len(answers[6]["jobs"]) == 3  # two Flexydial uploads, one Ozonetel file (one refused)
