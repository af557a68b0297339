# ruff: noqa: E501 (the corpus holds real agents, whole)
"""The agent matcher: CrawlerDetect's verdicts, on its own lists, by an automaton that never backtracks."""

from __future__ import annotations

import functools
import re

import pytest
from analytics_pipeline.adapters.bots import (
    MAX_AGENT_CHARS,
    VERDICTS_KEPT,
    AgentMatcher,
    CrawlerDetectBots,
    crawler_detect_matcher,
    re2_pattern,
)
from crawlerdetect import CrawlerDetect
from crawlerdetect.providers.crawlers import data as CRAWLERS
from hypothesis import given, settings
from hypothesis import strategies as st

# A corpus assembled from real agents: current browsers (desktop, mobile, in-app), crawlers, tools and
# headless browsers. The verdicts expected are CrawlerDetect's own (the test compares, it does not
# decide), and a few are spelled out below as a check that the corpus is what it claims to be.
BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 12; M2101K6G) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 YaBrowser/24.10.3.100 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 345.0.0.34.95",
    "Mozilla/5.0 (Linux; Android 14; K) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.39 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/489.0.0.55.81;]",
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
]
CRAWLERS_AND_TOOLS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Twitterbot/1.0",
    "curl/8.5.0",
    "Wget/1.21.4",
    "python-requests/2.32.3",
    "Go-http-client/2.0",
    "okhttp/4.12.0",
    "PostmanRuntime/7.42.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
    "Mozilla/5.0 (compatible; YandexSearch/1.0)",
    "Mozilla/5.0 (compatible; Yandex)",
]


@pytest.fixture(scope="module")
def matcher() -> AgentMatcher:
    return crawler_detect_matcher()


@pytest.fixture(scope="module")
def crawler_detect() -> CrawlerDetect:
    return CrawlerDetect()


@pytest.mark.parametrize("agent", BROWSERS + CRAWLERS_AND_TOOLS)
def test_the_verdict_is_crawler_detects(matcher, crawler_detect, agent):
    assert matcher.is_crawler(agent) == crawler_detect.is_crawler(agent)


def test_the_corpus_holds_browsers_and_bots(matcher):
    assert not any(matcher.is_crawler(agent) for agent in BROWSERS)
    assert sum(matcher.is_crawler(agent) for agent in CRAWLERS_AND_TOOLS) >= len(CRAWLERS_AND_TOOLS) - 2


def test_every_pattern_of_the_list_is_compiled_by_re2(matcher):
    # nothing is left to a backtracking engine: the verdict's time is linear in the agent's length
    assert matcher._residue == [] and matcher._exclusion_residue == []


def _literal(pattern: str) -> str:
    return "".join(c for c in pattern if c.isalnum() or c in " /-.")


TOKENS = [
    "Mozilla/5.0 ",
    "(Windows NT 10.0; Win64; x64) ",
    "AppleWebKit/537.36 ",
    "(KHTML, like Gecko) ",
    "Chrome/131.0.0.0 ",
    "Safari/537.36 ",
    "Firefox/133.0 ",
    "Mobile ",
    "\u0663",  # an Arabic-Indic digit: Python's \\d takes it
    "\u212a",  # the Kelvin sign: folds to k
    "\u017f",  # the long s: folds to s
    "Search",
    "\t",
]


@settings(max_examples=400, deadline=None)
@given(
    parts=st.lists(
        st.one_of(st.sampled_from(TOKENS), st.sampled_from(CRAWLERS).map(_literal), st.text(max_size=12)),
        max_size=8,
    )
)
def test_agents_built_from_browsers_and_the_lists_patterns_get_crawler_detects_verdict(parts):
    agent = "".join(parts)  # st.text() holds no lone surrogate: every agent here is text
    assert shared_matcher().is_crawler(agent) == CrawlerDetect().is_crawler(agent)


@functools.cache
def shared_matcher() -> AgentMatcher:
    return crawler_detect_matcher()


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("Yandex(?!Search)", "Yandex"),
        ("Yandex(?!Search)", "YandexSearch"),
        ("Yandex(?!Search)", "yandexsearc"),
        ("Yandex(?!Search)", "YandexSEARCHbot"),
        ("Yandex(?!Search)", "YandexS\n"),
        ("Safari.[\\d\\.]*", "Safari/\u0663\u0664"),
        ("[a-z0-9\\-_]*(bot|crawl)", "my-crawler"),
        ("Daum(oa)?[ \\/][0-9]", "Daumoa/4"),
    ],
)
def test_each_rewrite_keeps_the_patterns_matches(pattern, text):
    import re2

    options = re2.Options()
    options.case_sensitive = False
    rewritten = re2.compile(re2_pattern(pattern), options)
    assert (rewritten.search(text) is not None) == (re.search(pattern, text, re.IGNORECASE) is not None)


def test_missing_blank_and_over_long_agents_are_bots_without_a_match():
    class Refuses:
        def is_crawler(self, agent: str) -> bool:
            raise AssertionError("judged")

    bots = CrawlerDetectBots(Refuses())  # type: ignore[arg-type]
    for agent in (None, "", "   ", "a" * (MAX_AGENT_CHARS + 1), BROWSERS[0] + " " * 600):
        assert bots.is_bot(agent)


def test_an_agent_of_512_characters_is_judged_and_one_that_is_not_text_is_a_bot():
    bots = CrawlerDetectBots()
    assert not bots.is_bot((BROWSERS[0] + " x" * 300)[:MAX_AGENT_CHARS])
    assert bots.is_bot(BROWSERS[0] + "\udc80")


def test_a_pattern_re2_refuses_is_still_matched_by_re_and_the_rest_by_re2():
    matcher = AgentMatcher(["curl", "(?<=x)bot"], ["Mozilla(?<=zilla)"])
    assert [p.pattern for p in matcher._residue] == ["(?<=x)bot"]
    assert [p.pattern for p in matcher._exclusion_residue] == ["Mozilla(?<=zilla)"]
    assert matcher.is_crawler("curl/8.5.0") and matcher.is_crawler("xbot")
    assert not matcher.is_crawler("ybot") and not matcher.is_crawler("Mozilla")


def test_an_agent_seen_again_keeps_the_matchers_verdict_and_the_verdicts_kept_are_bounded():
    judged: list[str] = []

    class Counting(AgentMatcher):
        def is_crawler(self, agent: str) -> bool:
            judged.append(agent)
            return "bot" in agent

    bots = CrawlerDetectBots(Counting([], []))
    for _ in range(3):
        assert not bots.is_bot(BROWSERS[0])
        assert bots.is_bot("somebot/1.0")
    assert judged == [BROWSERS[0], "somebot/1.0"]
    for n in range(VERDICTS_KEPT + 1):
        assert not bots.is_bot(f"agent {n}")
    assert not bots.is_bot("agent 0")  # the oldest verdict was let go: judged again, the same
    assert judged.count("agent 0") == 2
    assert bots._verdict.cache_info().currsize == VERDICTS_KEPT
