"""Deterministic, company-like account names and person-like user names for the seed."""

from __future__ import annotations

import random
import re

PREFIXES = (
    "Nordic", "Green", "Blue", "Delta", "Polder", "North Sea", "Alpine", "Coastal", "Urban",
    "Rural", "Bright", "Clear", "Amstel", "Rhine", "Meuse", "Zuider", "Oost", "West", "Hanze",
    "Orange", "Silver", "Golden", "Iron", "Oak", "Linden", "Willow", "Heather", "Dune", "Tulip",
    "Windmill", "Harbor", "Canal", "Valley", "Summit", "Prairie", "Aurora", "Zenith", "Vector",
    "Quantum", "Fusion", "Horizon", "Meridian", "Pioneer", "Beacon", "Compass", "Keystone",
    "Evergreen", "Riverside", "Lakeside", "Highland",
)  # fmt: skip
CORES = (
    "Solar", "Wind", "Grid", "Heat", "Power", "Flex", "Volt", "Battery", "Hydrogen", "Energy",
    "Thermal", "Storage", "Charge", "Current", "Watt", "Kinetic", "Biogas", "Geothermal",
    "Tidal", "Mobility", "Greenhouse", "Dairy", "Logistics", "Cold Chain", "Data Center",
    "Housing", "Farming", "Steel", "Water", "District Heating",
)  # fmt: skip
KINDS = (
    "B.V.", "GmbH", "Cooperative", "Holding", "Services", "Solutions", "Utilities", "Partners",
    "Group", "Labs", "Systems", "Trading", "Collective", "Works", "Company", "Ventures", "N.V.",
    "Consultants", "Foundation", "Association",
)  # fmt: skip
CITIES = (
    "Amsterdam", "Rotterdam", "Utrecht", "Eindhoven", "Groningen", "Tilburg", "Almere", "Breda",
    "Nijmegen", "Apeldoorn", "Haarlem", "Arnhem", "Enschede", "Amersfoort", "Zwolle", "Leiden",
    "Maastricht", "Dordrecht", "Delft", "Hamburg", "Bremen", "Antwerp", "Ghent", "Aarhus",
    "Malmo", "Bergen", "Lyon", "Porto", "Bilbao", "Turin",
)  # fmt: skip
FIRST_NAMES = (
    "Anna", "Bram", "Carla", "Daan", "Eva", "Finn", "Greta", "Hugo", "Iris", "Jan", "Kim",
    "Lars", "Mila", "Noah", "Olga", "Pieter", "Quinn", "Rosa", "Sem", "Tess", "Uma", "Vera",
    "Wout", "Xander", "Yara", "Zoe", "Lotte", "Ruben", "Sanne", "Thijs",
)  # fmt: skip
LAST_NAMES = (
    "de Vries", "Jansen", "van Dijk", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder",
    "de Groot", "Bos", "Vos", "Peters", "Hendriks", "van Leeuwen", "Dekker", "Brouwer", "de Wit",
    "Dijkstra", "Smits", "de Graaf", "van der Meer", "Kok", "Jacobs", "Schouten", "Vermeulen",
    "van den Berg", "Willems", "Hoekstra", "Koster",
)  # fmt: skip


def company_names(count: int, rng: random.Random, taken: set[str]) -> list[str]:
    """`count` distinct names like "Polder Solar Cooperative" (a city or a number if needed)."""
    seen = {name.lower() for name in taken}
    names: list[str] = []
    while len(names) < count:
        name = f"{rng.choice(PREFIXES)} {rng.choice(CORES)} {rng.choice(KINDS)}"
        if name.lower() in seen:
            name = f"{name} {rng.choice(CITIES)}"
        suffix = 2
        base = name
        while name.lower() in seen:
            name = f"{base} {suffix}"
            suffix += 1
        seen.add(name.lower())
        names.append(name)
    return names


def person(rng: random.Random) -> tuple[str, str]:
    """A user name and the local part of an e-mail address for it."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return f"{first} {last}", f"{first}.{last}".lower().replace(" ", "")


def domain_of(company: str) -> str:
    """An e-mail domain for a company name: "Polder Solar B.V." -> "polder-solar-bv.example"."""
    slug = re.sub(r"[^a-z0-9]+", "-", company.lower().replace(".", "")).strip("-")
    return f"{slug[:50]}.example"
