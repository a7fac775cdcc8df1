"""Rewrite every inlined ```diff block of docs/variants.md from the real `diff dqn_cartpole.py <variant>` output.

    python docs/sync_diffs.py           # bring docs/variants.md back in sync after a shared part changed
    python docs/sync_diffs.py --check   # change nothing; exit 1 naming the blocks that are out of date

A block belongs to the nearest command written before it in backticks, `diff dqn_cartpole.py <variant>.py`,
with no code fence in between. The block gets plain `diff` output (normal format, the `<` and `>` lines that
test_scripts.py counts), exactly as the command prints it. A count written as "`<variant>.py`: N changed lines"
is rewritten too.
"""
import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the command, then text with no code fence and no other such command, then the ```diff block
BLOCK = re.compile(r"(?P<head>`diff dqn_cartpole\.py (?P<variant>[\w.-]+\.py)`(?:(?!```|`diff )[\s\S])*?```diff\n)"
                   r"(?P<body>[\s\S]*?)(?P<fence>```)")
COUNT = re.compile(r"`(?P<variant>[\w.-]+\.py)`: (?P<count>\d+) changed lines")


def current_diff(variant):
    result = subprocess.run(["diff", "dqn_cartpole.py", variant], cwd=ROOT, capture_output=True, text=True)
    if result.returncode > 1:  # diff exits 0 when the files are the same, 1 when they differ, 2 on trouble
        print(f"error: diff dqn_cartpole.py {variant}: {result.stderr.strip()}", file=sys.stderr)
        sys.exit(2)
    return result.stdout


def sync(page_text):
    """(the README text with every diff block rewritten, the variants whose block changed)."""
    stale = []

    def rewrite(match):
        body = current_diff(match["variant"])
        if body != match["body"]:
            stale.append(match["variant"])
        return match["head"] + body + match["fence"]

    def recount(match):
        count = sum(line.startswith(("<", ">")) for line in current_diff(match["variant"]).splitlines())
        if count != int(match["count"]):
            stale.append(f"the count of {match['variant']}")
        return f"`{match['variant']}`: {count} changed lines"
    return COUNT.sub(recount, BLOCK.sub(rewrite, page_text)), stale


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only report blocks that are out of date (exit 1)")
    p.add_argument("--page", default=str(ROOT / "docs" / "variants.md"))
    args = p.parse_args()
    text = Path(args.page).read_text()
    new_text, stale = sync(text)
    if not BLOCK.search(text):
        print(f"error: no `diff dqn_cartpole.py <variant>` block in {args.page}", file=sys.stderr)
        sys.exit(2)
    if args.check:
        if stale:
            print(f"out of date in {args.page}: {', '.join(stale)} (run python docs/sync_diffs.py)")
            sys.exit(1)
        print(f"{args.page}: every diff block and count is current")
        return
    Path(args.page).write_text(new_text)
    print(f"{args.page}: rewrote {', '.join(stale) if stale else 'nothing (already current)'}")


if __name__ == "__main__":
    main()
