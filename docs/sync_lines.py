"""Keep the docs' line references pointing at the code they name.

    python docs/sync_lines.py           # rewrite every stale reference in README.md and docs/*.md
    python docs/sync_lines.py --check   # change nothing; exit 1 naming the stale ones (a test runs this)

A reference is a link to a line range of a script followed by the first line of that code in backticks:

    [lines 97-105](../double_dqn.py#L97-L105) `def compute_td_target(q_network, target_network, rewards, ...`

The backticked text (a trailing "..." allowed) must start exactly one line of the script, after its leading
spaces; the range keeps its length and moves to that line. A count written as "`<variant>.py`: N changed
lines" is rewritten to `diff dqn_cartpole.py <variant>.py | grep -c '^[<>]'`.
"""
import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REF = re.compile(r"\[lines? (?P<a>\d+)(?:-(?P<b>\d+))?\]\((?P<prefix>(?:\.\./)?)(?P<script>[\w.-]+\.py)#L\d+(?:-L\d+)?\)"
                 r" `(?P<code>[^`]+)`")
COUNT = re.compile(r"`(?P<variant>[\w.-]+\.py)`: (?P<count>\d+) changed lines")


def changed_lines(variant):
    diff = subprocess.run(["diff", "dqn_cartpole.py", variant], cwd=ROOT, capture_output=True, text=True).stdout
    return sum(line.startswith(("<", ">")) for line in diff.splitlines())


def line_of(script, code):
    """The 1-based line of `script` that starts with `code` (after its indentation); an error if not exactly one."""
    code = code.removesuffix("...").rstrip()
    lines = [i + 1 for i, line in enumerate((ROOT / script).read_text().splitlines()) if line.lstrip().startswith(code)]
    if len(lines) != 1:
        raise ValueError(f"{script}: {len(lines)} lines start with `{code}` (need exactly one)")
    return lines[0]


def sync(text):
    """(the text with every reference and count made current, the stale ones)."""
    stale = []

    def rewrite(m):
        a = line_of(m["script"], m["code"])
        b = a + int(m["b"]) - int(m["a"]) if m["b"] else None
        span = f"{a}-{b}" if b else f"{a}"
        new = f"[line{'s' if b else ''} {span}]({m['prefix']}{m['script']}#L{a}{f'-L{b}' if b else ''}) `{m['code']}`"
        if new != m[0]:
            stale.append(f"{m['script']}: {m['code'][:40]}")
        return new

    def recount(m):
        count = changed_lines(m["variant"])
        if count != int(m["count"]):
            stale.append(f"the count of {m['variant']}")
        return f"`{m['variant']}`: {count} changed lines"
    return COUNT.sub(recount, REF.sub(rewrite, text)), stale


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only report what is out of date (exit 1)")
    p.add_argument("pages", nargs="*", help="default: README.md and docs/*.md")
    args = p.parse_args()
    pages = [Path(page) for page in args.pages] or [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    any_stale = False
    for page in pages:
        try:
            new_text, stale = sync(page.read_text())
        except ValueError as e:
            print(f"error: {page.name}: {e}", file=sys.stderr)
            sys.exit(2)
        if stale:
            any_stale = True
            print(f"{page.name}: {'out of date' if args.check else 'rewrote'}: {'; '.join(stale)}")
            if not args.check:
                page.write_text(new_text)
    if args.check and any_stale:
        print("run: python docs/sync_lines.py")
        sys.exit(1)


if __name__ == "__main__":
    main()
