"""A name for a run started without one, as W&B gives (`swift-river-12`): two words and the run's number in its
project, which tell runs apart in a list and a chart's legend where a run id does not.

Chosen by the command, not the projection, so that the event carries it: every read model and consumer sees the same
name. The words follow from the run id, so a start sent again is named alike; the number is how many runs the project
had, plus one (two runs started at once may share it: a name is for people, the run id is the key).
"""

from __future__ import annotations

import hashlib

ADJECTIVES = (
    "amber", "ancient", "autumn", "azure", "bold", "brave", "bright", "calm", "clear", "cosmic", "crimson", "crisp",
    "dashing", "dawn", "deep", "dry", "eager", "easy", "electric", "ember", "fancy", "fast", "fearless", "fiery",
    "fine", "fluent", "fresh", "frosty", "gentle", "glad", "golden", "grand", "green", "hardy", "hazy", "honest",
    "icy", "jolly", "keen", "kind", "light", "lively", "lucky", "lunar", "misty", "morning", "noble", "northern",
    "olive", "patient", "polar", "proud", "quiet", "rapid", "rosy", "royal", "rustic", "sage", "scarlet", "serene",
    "silent", "silver", "smooth", "snowy", "solar", "spring", "steady", "still", "stellar", "stoic", "sunny", "swift",
    "tidy", "twilight", "vivid", "warm", "wild", "windy", "wise", "young",
)  # fmt: skip

NOUNS = (
    "bird", "blaze", "breeze", "brook", "butterfly", "canyon", "cloud", "comet", "cosmos", "dawn", "dew", "dream",
    "dune", "eon", "field", "fire", "firefly", "flower", "fog", "forest", "frost", "galaxy", "glade", "glitter",
    "grass", "grove", "haze", "hill", "horizon", "lake", "leaf", "meadow", "moon", "morning", "mountain", "night",
    "oasis", "ocean", "paper", "pine", "planet", "pond", "rain", "resonance", "river", "sea", "shadow", "shape",
    "sky", "smoke", "snow", "sound", "spark", "star", "stone", "storm", "stream", "sun", "sunset", "surf", "terrain",
    "thunder", "tree", "valley", "violet", "voice", "water", "wave", "wildflower", "wind", "wood",
)  # fmt: skip


def run_name(run_id: str, runs_in_project: int) -> str:
    digest = hashlib.sha256(run_id.encode()).digest()
    adjective = ADJECTIVES[int.from_bytes(digest[:4], "big") % len(ADJECTIVES)]
    noun = NOUNS[int.from_bytes(digest[4:8], "big") % len(NOUNS)]
    return f"{adjective}-{noun}-{runs_in_project + 1}"
