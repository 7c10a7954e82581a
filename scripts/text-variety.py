#!/usr/bin/env python3
"""Text variety of a run's feelings, chat lines and posts.

Usage: scripts/text-variety.py RUN_DIR/messages.jsonl

Counts the generated text only (after "feels: ", "says: ", "posts: "; the speaker's name is
not part of it), per kind: messages, distinct texts, the most frequent text and its count.
"""
import collections
import json
import sys

KINDS = [("feeling", " feels: "), ("chat line", " says: "), ("post", " posts: ")]


def main(path):
    counts = {k: collections.Counter() for k, _ in KINDS}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = json.loads(line)
            c = m.get("content", "")
            if "observes that" in c:
                continue  # a post's delivery repeats its text
            for kind, sep in KINDS:
                if sep in c:
                    counts[kind][c.split(sep, 1)[1]] += 1
                    break
    print("| text | messages | distinct | most frequent (count) |")
    print("|---|---|---|---|")
    for kind, _ in KINDS:
        c = counts[kind]
        n = sum(c.values())
        top = c.most_common(1)
        t, k = top[0] if top else ("", 0)
        print(f"| {kind} | {n:,} | {len(c):,} | {t!r} ({k:,}) |")


if __name__ == "__main__":
    main(sys.argv[1])
