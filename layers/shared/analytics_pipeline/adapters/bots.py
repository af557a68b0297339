"""Bot detection on CrawlerDetect's list: a maintained public list of crawlers and headless agents."""

from __future__ import annotations


class CrawlerDetectBots:
    """Missing or blank agents are bots too. CrawlerDetect caches its verdicts (real traffic repeats)."""

    def __init__(self) -> None:
        from crawlerdetect import CrawlerDetect

        self._detector = CrawlerDetect()

    def is_bot(self, user_agent: str | None) -> bool:
        if user_agent is None or not user_agent.strip():
            return True
        return bool(self._detector.is_crawler(user_agent[:2048]))
