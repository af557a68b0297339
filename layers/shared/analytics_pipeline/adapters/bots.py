"""Bot detection on CrawlerDetect's list: a maintained public list of crawlers and headless agents.

CrawlerDetect (the `crawlerdetect` package) judges an agent with Python's `re`: it removes the list's
exclusions from the agent, then searches the remainder for any of ~1,500 crawler patterns joined
into one alternation. `re` backtracks: at every position of the agent it tries every alternative,
and patterns with `.*` or character-class runs rescan the rest of the agent, so the time grows with
the square of the agent's length (measured: 0.2 ms for a browser's agent, ~300 ms for a crafted
2 KiB one). A client chooses its agent, so that time is the client's to choose too.

Here the same lists are compiled with RE2 (`google-re2`), whose automata never backtrack: a search
takes time linear in the agent's length, whatever the agent. The verdicts are CrawlerDetect's own:
the same exclusions are removed first, then the same patterns searched, with three rewrites RE2
needs and that change no verdict (tests/unit/test_bots.py compares both on a corpus):
- `\\d` is written `\\p{Nd}`: Python's `\\d` is every Unicode decimal digit, RE2's only ASCII;
- capturing groups become non-capturing (a verdict needs no group, and RE2 matches faster without);
- a negative lookahead of a literal, `X(?!lit)` (RE2 has no lookaround), is spelled out as the
  alternatives that are not `lit`: the end, a first character other than lit's, and so on.
A pattern RE2 still cannot compile is matched on its own with `re` (none today; logged, and bounded
by the agent's length limit).

Agents longer than MAX_AGENT_CHARS are bots without a match (no browser sends one that long), and a
missing or blank agent is a bot too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from typing import Any

from analytics_pipeline.observability import logger

MAX_AGENT_CHARS = 512  # longer agents are bots (docs/security.md)
# verdicts kept per process: a site's visitors send a few hundred distinct agents, each many times
# (at most ~0.6 MB: an agent past MAX_AGENT_CHARS is judged without the matcher, and not kept)
VERDICTS_KEPT = 1024
_RE2_MAX_MEM = 64 << 20  # room for the lazily built DFA of ~1,500 patterns (its default is 8 MiB)


def _literal_lookahead(literal: str) -> str:
    """RE2's spelling of `(?!literal)` for a literal of letters and digits, case-insensitively."""
    options = ["$"]
    for i, char in enumerate(literal):
        options.append(f"{re.escape(literal[:i])}$" if i else "")
        options.append(f"{re.escape(literal[:i])}[^{char}]")
    return "(?:" + "|".join(o for o in options if o) + ")"


def re2_pattern(pattern: str) -> str:
    """One CrawlerDetect pattern, rewritten for RE2 with the same matches (module docstring)."""
    pattern = re.sub(r"\(\?!([A-Za-z0-9]+)\)", lambda m: _literal_lookahead(m.group(1)), pattern)
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            pair = pattern[i : i + 2]
            out.append(r"\p{Nd}" if pair == r"\d" else pair)
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "]":  # a `]` first in a class is a member
                out.append("[]")
                i += 2
                continue
        elif char == "(" and pattern[i + 1 : i + 2] != "?":
            out.append("(?:")
            i += 1
            continue
        out.append(char)
        i += 1
    return "".join(out)


class AgentMatcher:
    """CrawlerDetect's verdict on an agent, in time linear in its length (module docstring)."""

    def __init__(self, crawlers: Sequence[str], exclusions: Sequence[str]) -> None:
        import re2

        options = re2.Options()
        options.case_sensitive = False
        options.max_mem = _RE2_MAX_MEM
        self._re2, self._options = re2, options
        self._crawlers, residue = self._build(crawlers)
        self._exclusions, excluded_residue = self._build(exclusions)
        # patterns RE2 cannot take, matched by `re` (bounded: an agent is at most MAX_AGENT_CHARS)
        self._residue = [re.compile(p, re.IGNORECASE) for p in residue]
        self._exclusion_residue = [re.compile(p, re.IGNORECASE) for p in excluded_residue]
        if residue or excluded_residue:
            logger.warning("bot patterns matched by re", patterns=[*residue, *excluded_residue])

    def _build(self, patterns: Iterable[str]) -> tuple[Any, list[str]]:
        """(the RE2 alternation of every pattern RE2 compiles, or None; the patterns it refuses).

        The whole list is compiled at once (a cold start compiles it once); only when RE2 refuses it
        is each pattern tried on its own, to find the ones it refuses.
        """
        originals = list(patterns)
        rewritten = [re2_pattern(p) for p in originals]
        if not rewritten:
            return None, []
        try:
            return self._re2.compile(_alternation(rewritten), self._options), []
        except self._re2.error:
            pass
        fine: list[str] = []
        rest: list[str] = []
        for original, spelled in zip(originals, rewritten, strict=True):
            try:
                self._re2.compile(spelled, self._options)
            except self._re2.error:
                rest.append(original)
            else:
                fine.append(spelled)
        return (self._re2.compile(_alternation(fine), self._options) if fine else None), rest

    def is_crawler(self, agent: str) -> bool:
        """CrawlerDetect's `is_crawler` for this agent."""
        agent = agent.strip()
        if not agent:
            return False
        if self._exclusions is not None:
            agent = self._exclusions.sub("", agent)
        for pattern in self._exclusion_residue:
            agent = pattern.sub("", agent)
        if not agent:
            return False
        if self._crawlers is not None and self._crawlers.search(agent) is not None:
            return True
        return any(pattern.search(agent) for pattern in self._residue)


def _alternation(patterns: Sequence[str]) -> str:
    return "|".join(f"(?:{p})" for p in patterns)


def crawler_detect_matcher() -> AgentMatcher:
    """The matcher on the `crawlerdetect` package's lists (its maintained data, as it ships them)."""
    from crawlerdetect.providers.crawlers import data as crawlers
    from crawlerdetect.providers.exclusions import data as exclusions

    return AgentMatcher(crawlers, exclusions)


class CrawlerDetectBots:
    """Missing, blank or over-long agents are bots; the rest are judged on CrawlerDetect's list.

    A verdict is a function of the agent alone, and the matcher's is the dear part of a request
    (~40 us for a browser's agent, mostly the pyre2 wrapper's Python): the last VERDICTS_KEPT
    agents' verdicts are kept. An agent not among them (a client that varies its own) is judged
    as before, in time linear in its length.
    """

    def __init__(self, matcher: AgentMatcher | None = None) -> None:
        self._matcher = matcher or crawler_detect_matcher()
        self._verdict = functools.lru_cache(maxsize=VERDICTS_KEPT)(self._judge)

    def is_bot(self, user_agent: str | None) -> bool:
        if user_agent is None or len(user_agent) > MAX_AGENT_CHARS or not user_agent.strip():
            return True
        return self._verdict(user_agent)

    def _judge(self, user_agent: str) -> bool:
        try:
            return self._matcher.is_crawler(user_agent)
        except UnicodeEncodeError:  # lone surrogates: no browser sends an agent that is not text
            return True
