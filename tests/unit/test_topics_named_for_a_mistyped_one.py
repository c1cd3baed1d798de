"""A command refusing a topic that does not exist names the cluster's topics, the nearest the mistyped name first: on
a cluster of hundreds, the first twenty by name left out the one meant (a full CI run's broker did)."""

from __future__ import annotations

from modelreg.events.kafka_log import _named


def test_the_topic_meant_is_named_first_among_hundreds() -> None:
    topics = {f"test.{n:012x}.events" for n in range(300)} | {"zz.modelreg.events", "__consumer_offsets"}
    topics |= {"zz.modelreg.events.deadletter"}

    named = _named(topics, near="zz.modelreg.evnts")

    assert named.startswith("zz.modelreg.events, ") and named.endswith("and 281 more")
    assert "__consumer_offsets" not in named and ".deadletter" not in named
