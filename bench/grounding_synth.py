"""Synthetic grounding items: supported answers and the same answers made unsupported.

Three kinds, each balanced (half supported, half not), all deterministic for a seed:

- ``data2text``: business records as JSON (name, address, categories, stars, attributes with booleans and
  Python-style dict strings, opening hours, reviews), as Yelp's open data lays them out; the supported
  answer restates fields in words ("rated 4.5 stars from 87 reviews", "offers free WiFi", "open 11 AM to
  10 PM on Mondays"); the unsupported one alters a field (a number, the city, a boolean read the wrong way,
  an hour) or adds a field value the record does not have ("offers delivery", "has a full bar").
- ``summary``: given a news article, a summary of two to four of its sentences, shortened and sometimes two
  of them fused into one; the unsupported one swaps a number or a name, negates a verb, swaps a role or
  direction, or adds a baseless clause (a cause, a quantity, an entity the article does not have).
- ``qa``: a supported answer from a labelled set, and the same answer perturbed the same ways.

Sources are passed in by the caller: bench/grounding_train.py feeds dev-part texts only, bench/grounding.py
feeds test-part texts (other articles, other answers, another seed) for the figures it reports.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass

from evals.evaluators.base import ContextDoc, EvalItem
from evals.evaluators.text import sentence_spans


@dataclass
class SynthCase:
    kind: str
    label: int
    item: EvalItem
    change: str  # what was done to the unsupported answer ("" for a supported one)


# --- perturbations of one sentence --------------------------------------------------------------------------

_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
_AUX = re.compile(r"\b(is|was|are|were|has|have|had|will|can|could|would|did|does)\b(?! not)")
_VERB = re.compile(r"\b([a-z]{3,}ed)\b")
_NAME = re.compile(r"(?<=[a-z,] )[A-Z][a-z]{2,}(?: [A-Z][a-z]{2,})?")
_SWAPS = {
    "won": "was nominated for",
    "nominated": "won",
    "increased": "decreased",
    "decreased": "increased",
    "rose": "fell",
    "fell": "rose",
    "before": "after",
    "after": "before",
    "bought": "sold",
    "sold": "bought",
    "higher": "lower",
    "lower": "higher",
    "more": "less",
    "less": "more",
    "first": "last",
    "last": "first",
    "largest": "smallest",
    "oldest": "youngest",
    "accepted": "rejected",
    "rejected": "accepted",
    "opened": "closed",
    "closed": "opened",
    "husband": "wife",
    "wife": "husband",
    "father": "mother",
    "mother": "father",
    "north": "south",
    "south": "north",
    "east": "west",
    "west": "east",
    "early": "late",
    "late": "early",
}
_BASELESS = (
    "after a two-year investigation by federal prosecutors",
    "citing rising costs and a shortage of staff",
    "according to a spokesman for the Ministry of Transport",
    "which cost an estimated $4.5 million",
    "in front of a crowd of about 3,000 people",
    "because of heavy rain that week",
    "with the help of a Swiss engineering firm",
    "making it the most popular choice among younger visitors",
    "despite strong opposition from local residents",
    "for the third time since 2011",
    "while on a family holiday in Portugal",
    "as part of a wider plan backed by the European Union",
    "under a contract signed with Siemens",
    "although critics called the decision premature",
    "and was later awarded a medal for bravery",
    "which doubled its sales within a year",
)
_NAMES = (
    "Michael Carter",
    "Laura Jensen",
    "Daniel Okafor",
    "Sofia Moreno",
    "Chicago",
    "Manchester",
    "Toronto",
    "Oxford University",
    "Reuters",
    "Microsoft",
    "Brazil",
    "Harvard",
)


def _change_number(sentence: str, rng: random.Random) -> str | None:
    found = list(_NUMBER.finditer(sentence))
    if not found:
        return None
    m = rng.choice(found)
    text = m.group()
    if "." in text:
        new = f"{float(text) + rng.choice([0.5, 1.0, 1.5]):.1f}"
    else:
        value = int(text)
        if 1900 <= value <= 2030:
            new = str(value + rng.choice([-3, -2, -1, 1, 2, 3]))
        else:
            new = str(value + rng.choice([1, 2, 3, 5, 10]) if value < 20 else value * rng.choice([2, 3]) + 1)
    return sentence[: m.start()] + new + sentence[m.end() :]


def _change_name(sentence: str, rng: random.Random, pool: list[str]) -> str | None:
    found = list(_NAME.finditer(sentence))
    if not found:
        return None
    m = rng.choice(found)
    options = [p for p in pool if p not in sentence] or list(_NAMES)
    return sentence[: m.start()] + rng.choice(options) + sentence[m.end() :]


def _negate(sentence: str, rng: random.Random) -> str | None:
    m = _AUX.search(sentence)
    if m:
        return sentence[: m.end()] + " not" + sentence[m.end() :]
    m = _VERB.search(sentence)
    if m:
        return sentence[: m.start()] + "did not " + m.group()[:-2] + sentence[m.end() :]
    return None


def _swap_role(sentence: str, rng: random.Random) -> str | None:
    found = [m for m in re.finditer(r"\b[a-z]+\b", sentence) if m.group() in _SWAPS]
    if not found:
        return None
    m = rng.choice(found)
    return sentence[: m.start()] + _SWAPS[m.group()] + sentence[m.end() :]


def _add_baseless(sentence: str, rng: random.Random) -> str:
    body = sentence.rstrip(" .!")
    return f"{body}, {rng.choice(_BASELESS)}."


def perturb(sentence: str, rng: random.Random, pool: list[str]) -> tuple[str, str]:
    """An unsupported variant of a supported sentence, and what was changed."""
    kinds = ["number", "name", "negation", "role", "baseless", "baseless"]
    rng.shuffle(kinds)
    for kind in kinds:
        if kind == "number":
            out = _change_number(sentence, rng)
        elif kind == "name":
            out = _change_name(sentence, rng, pool)
        elif kind == "negation":
            out = _negate(sentence, rng)
        elif kind == "role":
            out = _swap_role(sentence, rng)
        else:
            out = _add_baseless(sentence, rng)
        if out and out != sentence:
            return out, kind
    return _add_baseless(sentence, rng), "baseless"


# --- summaries and QA answers ------------------------------------------------------------------------------

_LEAD = re.compile(r"^(?:However|Meanwhile|But|And|Also|In addition|On [A-Z]\w+|Last \w+|Yesterday),?\s+")
_PAREN = re.compile(r"\s*\([^)]{0,80}\)")
_APPOSITIVE = re.compile(r",\s(?:who|which)\s[^,]{3,80},")


def _compress(sentence: str) -> str:
    out = _PAREN.sub("", sentence)
    out = _APPOSITIVE.sub("", out)
    out = _LEAD.sub("", out)
    return out[:1].upper() + out[1:]


def summary_cases(articles: list[str], seed: int, limit: int) -> list[SynthCase]:
    rng = random.Random(seed)
    cases: list[SynthCase] = []
    names = [m.group() for a in articles[:200] for m in _NAME.finditer(a)]
    for n, article in enumerate(articles):
        if len(cases) >= limit:
            break
        sentences = [article[a:b] for a, b in sentence_spans(article)]
        sentences = [s for s in sentences if 8 <= len(s.split()) <= 45]
        if len(sentences) < 4:
            continue
        picked = sorted(rng.sample(range(len(sentences)), rng.randint(2, min(4, len(sentences)))))
        summary = [_compress(sentences[i]) for i in picked]
        if rng.random() < 0.3:  # answers often speak about the source: "The article reports that ..."
            lead = rng.choice(("The article reports that ", "According to the article, ", "The text notes that "))
            summary[0] = lead + summary[0][:1].lower() + summary[0][1:]
        if len(summary) >= 2 and rng.random() < 0.4:  # fuse two source sentences into one
            first, second = summary[0].rstrip(". "), summary[1]
            summary[:2] = [f"{first}, and {second[:1].lower()}{second[1:]}"]
        context = (ContextDoc(f"article-{n}", article),)
        label = n % 2
        change = ""
        if not label:
            i = rng.randrange(len(summary))
            summary[i], change = perturb(summary[i], rng, names)
        cases.append(
            SynthCase("summary", label, EvalItem("Summarise the article.", " ".join(summary), context), change)
        )
    return cases


def qa_cases(items: list[EvalItem], seed: int, limit: int) -> list[SynthCase]:
    """``items``: answers labelled supported; every second one is perturbed."""
    rng = random.Random(seed)
    names = [m.group() for it in items[:300] for d in it.context for m in _NAME.finditer(d.text)]
    cases: list[SynthCase] = []
    for n, item in enumerate(items[:limit]):
        label = n % 2
        output, change = item.output, ""
        if not label:
            spans = sentence_spans(output)
            if not spans:
                continue
            a, b = rng.choice(spans)
            new, change = perturb(output[a:b], rng, names)
            output = output[:a] + new + output[b:]
        cases.append(SynthCase("qa", label, EvalItem(item.input, output, item.context), change))
    return cases


# --- data-to-text over business records ----------------------------------------------------------------------

_CITIES = (
    ("Tucson", "AZ"),
    ("Philadelphia", "PA"),
    ("Tampa", "FL"),
    ("Reno", "NV"),
    ("Nashville", "TN"),
    ("Boise", "ID"),
)
_STREETS = ("Main St", "Oak Ave", "E Broadway Blvd", "N 4th St", "Market St", "Elm Dr")
_CUISINES = (
    ("Mexican", ("tacos", "burritos", "churros", "salsa")),
    ("Italian", ("lasagna", "pizza", "tiramisu", "gnocchi")),
    ("Thai", ("pad thai", "green curry", "spring rolls", "mango sticky rice")),
    ("Coffee & Tea", ("latte", "cold brew", "croissants", "scones")),
    ("Burgers", ("burgers", "milkshakes", "onion rings", "fries")),
    ("Sushi Bars", ("salmon nigiri", "dragon roll", "miso soup", "edamame")),
)
_PRAISE = ("friendly staff", "fast service", "generous portions", "cozy atmosphere", "reasonable prices")
_COMPLAINT = ("long wait", "small parking lot", "noisy dining room", "slow service", "high prices")
_WORDS = ("Golden", "Blue", "Corner", "Little", "Urban", "Sunny", "Old Town", "Red")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_ATTRIBUTES = {
    "OutdoorSeating": ("offers outdoor seating", "has no outdoor seating"),
    "RestaurantsDelivery": ("offers delivery", "does not offer delivery"),
    "RestaurantsTakeOut": ("offers takeout", "does not offer takeout"),
    "RestaurantsReservations": ("takes reservations", "does not take reservations"),
    "GoodForKids": ("is good for kids", "is not suited to kids"),
    "BusinessAcceptsCreditCards": ("accepts credit cards", "does not accept credit cards"),
    "DogsAllowed": ("allows dogs", "does not allow dogs"),
    "HasTV": ("has TVs", "has no TV"),
}


def _clock(hour: int) -> str:
    return f"{hour % 12 or 12} {'AM' if hour < 12 else 'PM'}"


def _record(rng: random.Random) -> tuple[dict[str, object], dict[str, object]]:
    city, state = rng.choice(_CITIES)
    cuisine, dishes = rng.choice(_CUISINES)
    name = f"{rng.choice(_WORDS)} {rng.choice(('Kitchen', 'Cafe', 'Grill', 'Bistro', 'Cantina', 'House'))}"
    attrs = rng.sample(sorted(_ATTRIBUTES), 4)
    truth = {a: rng.random() < 0.6 for a in attrs}
    opening, closing = rng.choice((7, 8, 10, 11)), rng.choice((15, 20, 21, 22))
    reviews = []
    for _ in range(rng.randint(2, 3)):
        dish = rng.choice(dishes)
        good, bad = rng.choice(_PRAISE), rng.choice(_COMPLAINT)
        stars = rng.randint(2, 5)
        text = (
            f"We came here for the {dish} and were not disappointed. The {good} made the evening. "
            f"Only downside was the {bad}."
            if stars >= 4
            else f"The {dish} was bland and the {bad} ruined it for us."
        )
        reviews.append(
            {
                "review_stars": stars,
                "review_date": f"2021-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
                "review_text": text,
            }
        )
    record: dict[str, object] = {
        "name": name,
        "address": f"{rng.randint(100, 9999)} {rng.choice(_STREETS)}",
        "city": city,
        "state": state,
        "categories": f"{cuisine}, Restaurants",
        "business_stars": rng.choice((3.0, 3.5, 4.0, 4.5)),
        "review_count": rng.randint(5, 400),
        "attributes": {
            **{a: str(v) for a, v in truth.items()},
            "WiFi": rng.choice(("u'free'", "u'no'", "'paid'")),
            "BusinessParking": str({"garage": False, "street": rng.random() < 0.5, "lot": rng.random() < 0.5}),
        },
        "hours": dict.fromkeys(_DAYS[: rng.randint(5, 7)], f"{opening}:0-{closing}:0"),
        "reviews": reviews,
    }
    facts = {"cuisine": cuisine, "dishes": dishes, "truth": truth, "opening": opening, "closing": closing}
    return record, facts


_ALSO = {  # other ways an answer words an attribute (true, false)
    "OutdoorSeating": (("has outdoor seating", "has seating outdoors"), ("does not offer outdoor seating",)),
    "RestaurantsDelivery": (("delivers", "provides delivery"), ("has no delivery", "doesn't deliver")),
    "RestaurantsTakeOut": (("offers take-out", "lets you take food out"), ("has no takeout",)),
    "RestaurantsReservations": (("accepts reservations",), ("doesn't take reservations",)),
    "GoodForKids": (("is kid-friendly", "is suitable for children"), ("is not good for kids",)),
    "BusinessAcceptsCreditCards": (("takes credit cards",), ("doesn't take credit cards",)),
    "DogsAllowed": (("is dog-friendly",), ("does not permit dogs",)),
    "HasTV": (("has a TV",), ("does not have TVs",)),
}
# Embellishments of the kind generated overviews add to a record: absent from it, so unsupported.
_EMBELLISH = (
    "has a full bar",
    "offers live music on weekends",
    "is popular with locals",
    "is known for its cozy atmosphere",
    "offers vegan options",
    "is family-owned",
    "has a kids' menu",
    "offers a happy hour on weekdays",
    "was recently renovated",
    "is a great spot for a date night",
)
_EMBELLISH_CLAUSES = (
    "making it a favorite among locals",
    "known for its warm hospitality",
    "which has been family-run since 1998",
    "thanks to its award-winning chef",
    "in a lively neighborhood full of shops",
)


def _attribute(a: str, value: bool, rng: random.Random) -> str:
    options = (_ATTRIBUTES[a][0 if value else 1], *_ALSO[a][0 if value else 1])
    return rng.choice(options)


def _rating(stars: object, count: object, rng: random.Random) -> str:
    return rng.choice(
        (
            f"It holds an average rating of {stars} stars based on {count} reviews.",
            f"It has a {stars}-star rating from {count} reviews.",
            f"Customers rate it {stars} out of 5 stars across {count} reviews.",
            f"With {count} reviews, it averages {stars} stars.",
        )
    )


def _hours(opening: int, closing: int, rng: random.Random) -> str:
    o, c = _clock(opening), _clock(closing)
    return rng.choice(
        (
            f"It is open from {o} to {c} on Mondays.",
            f"On Mondays it opens at {o} and closes at {c}.",
            f"Its Monday hours are {o} to {c}.",
            f"Hours on Monday run from {o} until {c}.",
        )
    )


def _restate(record: dict[str, object], facts: dict[str, object], rng: random.Random) -> list[str]:
    """The record in words, in the ways generated overviews put it: name and place, rating, two attributes,
    Monday hours (sentences 0 to 3, which the perturbations rely on), then some of WiFi, parking and a
    review, and last what reviewers thought of a dish."""
    truth = facts["truth"]
    assert isinstance(truth, dict)
    name, cuisine, city, state, address = (
        record["name"],
        str(facts["cuisine"]).lower(),
        record["city"],
        record["state"],
        record["address"],
    )
    sentences = [
        rng.choice(
            (
                f"{name} is a {cuisine} restaurant located at {address} in {city}, {state}.",
                f"Located at {address} in {city}, {state}, {name} serves {cuisine} food.",
                f"{name}, a {cuisine} spot in {city}, {state}, can be found at {address}.",
                f"{name} is a {cuisine} place at {address} in {city}.",
            )
        ),
        _rating(record["business_stars"], record["review_count"], rng),
    ]
    said = [_attribute(a, v, rng) for a, v in truth.items()]
    rng.shuffle(said)
    sentences.append(rng.choice((f"The restaurant {said[0]} and {said[1]}.", f"It {said[0]}, and it {said[1]}.")))
    sentences.append(_hours(int(str(facts["opening"])), int(str(facts["closing"])), rng))
    attributes = record["attributes"]
    assert isinstance(attributes, dict)
    extras: list[str] = []
    wifi = str(attributes["WiFi"])
    extras.append(
        rng.choice(("It offers free WiFi.", "Free Wi-Fi is available."))
        if "free" in wifi
        else rng.choice(("There is no WiFi.", "It does not offer WiFi."))
        if "no" in wifi
        else "It offers paid WiFi."
    )
    parking = str(attributes["BusinessParking"])
    if "'street': True" in parking:
        extras.append(rng.choice(("Street parking is available.", "Parking is available on the street.")))
    if "'lot': True" in parking:
        extras.append(rng.choice(("It has a parking lot.", "There is a parking lot for customers.")))
    reviews = record["reviews"]
    assert isinstance(reviews, list)
    review = rng.choice(reviews)
    good = re.search(r"The ([a-z ]+) made the evening", review["review_text"])
    if good:
        extras.append(f"One reviewer praised the {good.group(1)}.")
    extras.append(f"A review from {review['review_date']} gave it {review['review_stars']} stars.")
    sentences += rng.sample(extras, rng.randint(0, min(2, len(extras))))
    dish = re.search(r"the ([a-z ]+?) (?:and|was)", review["review_text"])
    if dish:
        mood = rng.choice(("enjoyed", "liked")) if review["review_stars"] >= 4 else "were unhappy with"
        sentences.append(f"Reviewers {mood} the {dish.group(1)}.")
    return sentences


def data2text_cases(seed: int, limit: int) -> list[SynthCase]:
    rng = random.Random(seed)
    cases: list[SynthCase] = []
    for n in range(limit):
        record, facts = _record(rng)
        sentences = _restate(record, facts, rng)
        label = n % 2
        change = ""
        if not label:
            change = rng.choice(("stars", "city", "boolean", "added", "hours", "dish", "baseless"))
            truth = facts["truth"]
            assert isinstance(truth, dict)
            if change == "stars":
                stars = float(str(record["business_stars"]))
                sentences[1] = _rating(stars + 0.5, record["review_count"], rng)
            elif change == "city":
                other = next(c for c, _ in _CITIES if c != record["city"])
                sentences[0] = sentences[0].replace(str(record["city"]), other)
            elif change == "boolean":
                a, v = next(iter(truth.items()))
                sentences[2] = f"The restaurant {_attribute(a, not v, rng)}."
            elif change == "added":
                absent = [a for a in _ATTRIBUTES if a not in truth]
                extra = rng.choice([_ATTRIBUTES[a][0] for a in absent] + list(_EMBELLISH))
                sentences.insert(3, f"It also {extra}.")
            elif change == "hours":
                sentences[3] = _hours(int(str(facts["opening"])), int(str(facts["closing"])) - 2, rng)
            elif change == "dish":
                dishes = facts["dishes"]
                assert isinstance(dishes, tuple)
                mentioned = json.dumps(record["reviews"])
                other_dish = next((d for d in dishes if d not in mentioned), "lobster rolls")
                sentences[-1] = f"Reviewers especially recommend the {other_dish}."
            else:
                i = rng.randrange(len(sentences))
                body = sentences[i].rstrip(" .!")
                sentences[i] = f"{body}, {rng.choice(_EMBELLISH_CLAUSES + _BASELESS[:4])}."
        context = (ContextDoc(f"business-{n}", json.dumps(record)),)
        prompt = "Write an objective overview about the following local business based only on the provided structured data in the JSON format."
        cases.append(SynthCase("data2text", label, EvalItem(prompt, " ".join(sentences), context), change))
    return cases
