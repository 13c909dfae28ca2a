#!/usr/bin/env python3
"""Builds the sample holdings (polar-dc.jsonl, genomics.jsonl, materials.jsonl)
from real public metadata shipped inside Python packages.

    python3 deploy/samples/build.py SOURCES_DIR [OUT_DIR]

SOURCES_DIR holds the packages' files at their paths inside the packages
(SOURCES.md says which package, which version and how to fetch them):

    eodag/resources/ext_collections.json
    bioregistry/external/fairsharing/processed.json
    matminer/datasets/dataset_metadata.json

Nothing is invented: every title, creator, description, keyword, DOI,
license, box and time range is the source's. What the converter decides is
listed in SOURCES.md: which records are taken, ids, visibility and groups
(the demo's choices), and how fields without a direct counterpart are
derived. The output is deterministic (sorted input, no clock, no random).
"""

import json
import re
import sys
import zlib
from pathlib import Path

# Records per institution, at most.
PER_INSTITUTION = 120

# The group every deployment vouches its peers into (deploy/bootstrap.sh).
GROUP = "consortium"

# Records whose visibility the demo relies on: (institution, id) -> visibility.
# The demo's tour names them (node/cli/src/demo.rs); keep both in step.
PINNED = {
    # Boxes across the antimeridian (Alaska, the Aleutians).
    ("polar-dc", "PC-gnatsgo-rasters"): "public",
    ("polar-dc", "PC-gnatsgo-tables"): "public",
    ("genomics", "PC-fia"): "public",
    # Shared with the consortium only.
    ("polar-dc", "CMEMS-SEAICE_ARC_SEAICE_L3_REP_OBSERVATIONS_011_010"): "groups",
    # Withdrawn by the demo.
    ("materials", "matminer-superconductivity2018"): "public",
}


def main() -> None:
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    sources = Path(sys.argv[1])
    out = Path(sys.argv[2]) if len(sys.argv) == 3 else Path(__file__).parent
    eodag = load(sources / "eodag/resources/ext_collections.json")
    fairsharing = load(sources / "bioregistry/external/fairsharing/processed.json")
    matminer = load(sources / "matminer/datasets/dataset_metadata.json")

    holdings = {
        "polar-dc": polar(eodag, fairsharing),
        "genomics": genomics(eodag, fairsharing),
        "materials": materials(matminer, fairsharing),
    }
    dois = set()
    for institution, records in holdings.items():
        records = records[:PER_INSTITUTION]
        for record in records:
            # One DOI names one dataset: never give two records the same one.
            if "doi" in record:
                if record["doi"] in dois:
                    del record["doi"]
                else:
                    dois.add(record["doi"])
            record.update(audience(institution, record["id"]))
        path = out / f"{institution}.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        print(f"{path}: {len(records)} records", file=sys.stderr)


def load(path: Path):
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        sys.exit(f"{path}: {e.strerror} (SOURCES.md says how to fetch it)")


def audience(institution: str, record_id: str) -> dict:
    """The demo's choice of who may see a record: most are public, and every
    institution has some of each other visibility. Drawn from a checksum of
    the id, so a record keeps its visibility when others come or go."""
    visibility = PINNED.get((institution, record_id))
    if visibility is None:
        draw = zlib.crc32(record_id.encode()) % 10
        visibility = {3: "federation", 6: "groups", 9: "private"}.get(draw, "public")
    if visibility == "groups":
        return {"visibility": "groups", "groups": [GROUP]}
    return {"visibility": visibility}


# ---------------------------------------------------------------- earth, polar

# Copernicus Marine products: the polar seas and the global ocean first,
# then the European seas.
CMEMS_PREFIXES = ("ARCTIC_", "ANTARCTIC_", "GLOBAL_", "SEAICE_", "INSITU_ARC", "INSITU_GLO",
                  "OCEANCOLOUR_ARC", "OCEANCOLOUR_GLO", "SST_GLO", "SL_GLO", "WAVE_GLO",
                  "MULTIOBS_GLO", "WIND_GLO", "NWSHELF_", "BALTICSEA_", "IBI_", "MEDSEA_")


def polar(eodag: dict, fairsharing: dict) -> list:
    marine = eodag["cop_marine"]["collections_config"]
    versions = dataset_versions(eodag["wekeo_cmems"]["collections_config"])
    records = []
    for product in sorted(marine):
        if not product.startswith(CMEMS_PREFIXES):
            continue
        c = marine[product]
        year = versions.get(product)
        producers = [p["name"] for p in c.get("providers", []) if "producer" in p.get("roles", [])]
        doi = c.get("sci:doi", "").lower()
        if not year or not producers or not re.fullmatch(r"10\.\d{4,9}/\S+", doi):
            continue
        record = {
            "id": f"CMEMS-{product}",
            "title": clean_line(c["title"]),
            "description": clean_text(c["description"]),
            "creators": [{"name": name} for name in producers],
            "publisher": host(c) or "Copernicus Marine Service",
            "publication_year": year,
            "resource_type": "Dataset",
            "keywords": keywords(c.get("keywords", [])),
            "disciplines": ["earth"],
            "doi": doi,
            "landing_url": f"https://doi.org/{doi}",
            # The Copernicus Marine licence: free, after registration.
            "license": "LicenseRef-Copernicus-Marine",
            "access": "registered",
            "formats": ["NetCDF"],
            "project": "Copernicus Marine Service",
        }
        record.update(extent(c))
        records.append(record)
    records += stac_collections(eodag, PLANETARY_EARTH, "earth")
    records += fairsharing_records(fairsharing, EARTH_KEYWORDS, "earth", 20)
    return records


def dataset_versions(wekeo: dict) -> dict:
    """Product id -> the year of its oldest dataset version still published
    (WEkEO names each dataset `EO:MO:DAT:PRODUCT:dataset_YYYYMM`)."""
    years = {}
    for key in wekeo:
        parts = key.split(":")
        if len(parts) < 5:
            continue
        m = re.search(r"_(\d{4})(\d{2})$", parts[4])
        if m:
            year = int(m.group(1))
            years[parts[3]] = min(year, years.get(parts[3], year))
    return years


def host(c: dict):
    for p in c.get("providers", []):
        if "host" in p.get("roles", []):
            return p["name"]
    return None


def extent(c: dict) -> dict:
    """STAC extent -> spatial boxes and time range. STAC's first box is the
    union of the others when there are several; boxes that are all zero
    mean 'no box'."""
    out = {}
    boxes = c.get("extent", {}).get("spatial", {}).get("bbox", [])
    if len(boxes) > 1 and all(covers(boxes[0], b) for b in boxes[1:]):
        boxes = boxes[1:]
    kept = []
    for b in boxes:
        if len(b) != 4 or not any(b):
            continue
        w, s, e, n = (float(x) for x in b)
        if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= n <= 90):
            continue
        box = {"west": w, "south": s, "east": e, "north": n}
        if box not in kept:
            kept.append(box)
    kept = join_at_antimeridian(kept)
    if kept:
        out["spatial"] = kept
    interval = c.get("extent", {}).get("temporal", {}).get("interval", [[None, None]])[0]
    start, end = (interval + [None, None])[:2]
    temporal = {}
    if start:
        temporal["start"] = start[:10]
    if end:
        temporal["end"] = end[:10]
    if temporal:
        out["temporal"] = temporal
    return out


# The year eodag 4.10.1 recorded the collections (its release).
SNAPSHOT_YEAR = 2026


def snapshot_year(c: dict) -> int:
    """A STAC collection carries no publication date. A closed time range
    ends no later than the data were published in full, so its last year is
    used; an ongoing one is still being published: the snapshot's year."""
    end = c.get("extent", {}).get("temporal", {}).get("interval", [[None, None]])[0][1]
    return int(end[:4]) if end else SNAPSHOT_YEAR


def join_at_antimeridian(boxes: list) -> list:
    """STAC splits a box that crosses 180° in two (one ending at 180, one
    starting at -180); a record can say it as one box with west > east.
    Two halves with the same latitudes are joined, nothing else changes."""
    out = list(boxes)
    for east_half in boxes:
        for west_half in boxes:
            if (east_half in out and west_half in out
                    and east_half["east"] == 180 and west_half["west"] == -180
                    and east_half["west"] > west_half["east"]
                    and (east_half["south"], east_half["north"]) == (west_half["south"], west_half["north"])):
                joined = dict(east_half, east=west_half["east"])
                out[out.index(east_half)] = joined
                out.remove(west_half)
    return out


def covers(outer: list, inner: list) -> bool:
    """Whether `outer` (no antimeridian crossing) holds `inner`."""
    return (outer[0] <= inner[0] <= inner[2] <= outer[2]
            and outer[1] <= inner[1] <= inner[3] <= outer[3])


# Planetary Computer collections taken, with the producer each description
# names (the STAC collection lists no providers in the source; the build
# stops if the description does not name it).
PLANETARY_EARTH = {
    "gnatsgo-rasters": "USDA-NRCS Soil & Plant Science Division",
    "gnatsgo-tables": "USDA-NRCS Soil & Plant Science Division",
    "goes-glm": "NOAA",
    "goes-cmi": "NOAA",
    "noaa-hrrr": "NOAA",
    "noaa-cdr-sea-surface-temperature-optimum-interpolation": "NOAA",
    "noaa-cdr-ocean-heat-content": "NOAA",
    "era5-pds": "ECMWF",
    "jrc-gsw": "European Commission Joint Research Centre",
}

PLANETARY_LIFE = {
    "gbif": "GBIF",
    "io-biodiversity": "Impact Observatory",
    "mobi": "NatureServe",
    "fia": "U.S. Forest Service",
    "chloris-biomass": "Chloris Geospatial",
}


def stac_collections(eodag: dict, chosen: dict, discipline: str) -> list:
    pc = eodag["planetary_computer"]["collections_config"]
    records = []
    for cid in sorted(chosen):
        c = pc.get(cid)
        if c is None:
            continue
        producer = chosen[cid]
        if producer not in c["description"]:
            sys.exit(f"{cid}: the description does not name {producer!r}")
        year = snapshot_year(c)
        record = {
            "id": f"PC-{cid}",
            "title": clean_line(c["title"]),
            "description": clean_text(c["description"]),
            "creators": [{"name": producer}],
            "publisher": "Microsoft Planetary Computer",
            "publication_year": year,
            "resource_type": "Dataset",
            "keywords": keywords(c.get("keywords", [])),
            "disciplines": [discipline],
            "landing_url": f"https://planetarycomputer.microsoft.com/dataset/{cid}",
            "access": "open",
            "project": "Planetary Computer",
        }
        license = spdx(c.get("license"))
        if license:
            record["license"] = license
        record.update(extent(c))
        records.append(record)
    return records


# ---------------------------------------------------------------- life, genomics

EARTH_KEYWORDS = {"Earth Science", "Oceanography", "Glaciology", "Atmospheric Science",
                  "Climatology", "Hydrology", "Geophysics", "Meteorology", "Polar Science"}
GENOMICS_KEYWORDS = {"Genomics", "Functional Genomics", "Transcriptomics", "Metagenomics",
                     "Comparative Genomics", "DNA sequence", "RNA sequence", "Genetics",
                     "Human Genetics", "Epigenetics", "Genome annotation"}
MATERIALS_KEYWORDS = {"Materials Science", "Materials Engineering", "Crystallography",
                      "Condensed Matter Physics", "Chemistry", "Cheminformatics",
                      "Physical Chemistry", "Inorganic Chemistry"}


def genomics(eodag: dict, fairsharing: dict) -> list:
    records = fairsharing_records(fairsharing, GENOMICS_KEYWORDS, "life", 100)
    records += stac_collections(eodag, PLANETARY_LIFE, "life")
    return records


NOT_HOLDINGS = re.compile(
    r"ontology|vocabular|thesaurus|terminology|format|language|standard|schema|"
    r"guideline|identifier|nomenclature|checklist|minimum information|model|"
    r"classification|notation|markup|code list|taxonomy\b",
    re.I,
)


# FAIRsharing records already taken: each goes to one institution only.
TAKEN = set()


def fairsharing_records(fairsharing: dict, wanted: set, discipline: str, limit: int) -> list:
    """FAIRsharing database records with a named contact and a dated
    publication: the contact is the creator, the first publication's year
    the publication year, the resource its own publisher (DataCite: the
    entity that holds and distributes it)."""
    records = []
    for key in sorted(fairsharing):
        r = fairsharing[key]
        if key in TAKEN or not wanted & set(r.get("keywords", [])):
            continue
        # Databases and repositories only: no vocabularies, formats or standards.
        if NOT_HOLDINGS.search(r.get("name", "")):
            continue
        contact = r.get("contact") or {}
        years = [p["year"] for p in r.get("publications", []) if isinstance(p.get("year"), int)]
        name = clean_line(r.get("name", ""))
        if not contact.get("name") or not years or not name or not r.get("description"):
            continue
        creator = {"name": clean_line(contact["name"])}
        if contact.get("orcid"):
            creator["orcid"] = contact["orcid"]
        description = clean_text(r["description"])
        record = {
            "id": key,
            "title": name,
            "description": description,
            "creators": [creator],
            "publisher": name,
            "publication_year": min(years),
            "resource_type": "Dataset",
            "keywords": keywords(r.get("keywords", [])),
            "disciplines": [discipline],
            "landing_url": r["homepage"],
            "access": access_of(description),
            "project": "FAIRsharing",
        }
        license = spdx((r.get("license") or {}).get("name"))
        if license:
            record["license"] = license
        records.append(record)
        TAKEN.add(key)
        if len(records) == limit:
            break
    return records


def access_of(description: str) -> str:
    """The access a resource's own description states."""
    text = description.lower()
    if "controlled access" in text or "controlled-access" in text or "data access committee" in text:
        return "restricted"
    if "registration" in text or "register" in text or "login" in text:
        return "registered"
    return "open"


# ---------------------------------------------------------------- matter, materials

def materials(matminer: dict, fairsharing: dict) -> list:
    records = []
    for name in sorted(matminer):
        m = matminer[name]
        refs = bibtex_entries(m.get("bibtex_refs", ""))
        if not refs:
            continue
        first = refs[0]
        authors = [a for a in first.get("authors", []) if a][:100]
        year = first.get("year")
        if not authors or not year:
            continue
        description = clean_text(m["description"])
        reference = clean_text(m.get("reference", ""))
        record = {
            "id": f"matminer-{name}",
            "title": title_of(name, description),
            "description": f"{description}\n\nCite as: {reference}" if reference else description,
            "creators": [{"name": a} for a in authors],
            "publisher": "Materials Project" if "materialsproject" in m["url"] else "figshare",
            "publication_year": year,
            "resource_type": "Dataset",
            "keywords": [name, *columns_of(m)],
            "disciplines": ["matter"],
            "landing_url": m["url"],
            "access": "open",
            "formats": [m.get("file_type", "json.gz")],
            "project": "matminer" if not name.startswith("matbench") else "Matbench",
        }
        doi = data_doi(reference)
        if doi:
            record["doi"] = doi
        records.append(record)
    records += fairsharing_records(fairsharing, MATERIALS_KEYWORDS, "matter", 60)
    return records


def title_of(name: str, description: str) -> str:
    """matminer names its datasets but gives no title: its description's
    first sentence is the title, the name kept as a keyword and in the id."""
    sentence = clean_line(re.split(r"(?<=[a-z0-9)])\. ", description, maxsplit=1)[0]).rstrip(".")
    if len(sentence) > 200:
        sentence = sentence[:197].rsplit(" ", 1)[0] + "…"
    return sentence


def columns_of(m: dict) -> list:
    columns = m.get("columns", {})
    if isinstance(columns, str):
        try:
            columns = eval_dict(columns)
        except (ValueError, SyntaxError):
            return []
    return sorted(columns)[:20]


def eval_dict(text: str) -> dict:
    import ast

    value = ast.literal_eval(text)
    if not isinstance(value, dict):
        raise ValueError("not a dict")
    return value


def bibtex_entries(text: str) -> list:
    """Authors and year of each BibTeX entry in matminer's `bibtex_refs`."""
    import ast

    if isinstance(text, list):
        entries = text
    else:
        try:
            entries = ast.literal_eval(text) if text.startswith("[") else [text]
        except (ValueError, SyntaxError):
            entries = [text]
    out = []
    for entry in entries:
        fields = {}
        for m in re.finditer(r"(\w+)\s*=\s*[{\"](.*?)[}\"]\s*,?\s*\n", entry, re.S):
            fields[m.group(1).lower()] = m.group(2)
        authors = [
            clean_line(re.sub(r"[{}]", "", a))
            for a in re.split(r"\s+and\s+", fields.get("author", ""))
        ]
        year = re.search(r"\d{4}", fields.get("year", ""))
        out.append({"authors": [a for a in authors if a], "year": int(year.group()) if year else None})
    return out


DATA_REPOSITORIES = ("10.5061/dryad", "10.6084/m9.figshare", "10.5281/zenodo", "10.17188/", "10.18126/")


def data_doi(reference: str):
    """The DOI of the data itself when the reference gives one (a paper's
    DOI names the paper, not the dataset, and is left in the description)."""
    for m in re.finditer(r"10\.\d{4,9}/[^\s,;)\]]+", reference):
        doi = m.group().rstrip(".").lower()
        if doi.startswith(DATA_REPOSITORIES):
            return doi
    return None


# ---------------------------------------------------------------- text

def clean_line(text: str) -> str:
    return " ".join(text.split())


def clean_text(text: str) -> str:
    """Trimmed, without control characters other than line breaks, and
    within the record's description limit."""
    text = "".join(c for c in text if c in "\n\t" or c.isprintable()).strip()
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text[:60000]


def keywords(values: list) -> list:
    seen = []
    for v in values:
        v = clean_line(str(v))
        if v and len(v) <= 200 and v not in seen:
            seen.append(v)
    return seen[:50]


SPDX = {"cc-by-4.0": "CC-BY-4.0", "cc0-1.0": "CC0-1.0", "cc-by-sa-4.0": "CC-BY-SA-4.0",
        "cc-by-3.0": "CC-BY-3.0", "cc-by-nc-4.0": "CC-BY-NC-4.0", "cc-by-nc-sa-4.0": "CC-BY-NC-SA-4.0",
        "cc-by-sa-3.0": "CC-BY-SA-3.0", "pddl-1.0": "PDDL-1.0", "odbl-1.0": "ODbL-1.0",
        "cdla-permissive-1.0": "CDLA-Permissive-1.0", "cdla-sharing-1.0": "CDLA-Sharing-1.0",
        "mit": "MIT", "apache-2.0": "Apache-2.0", "ogl-canada-2.0": "OGL-Canada-2.0",
        "http://opendatacommons.org/licenses/pddl/1.0": "PDDL-1.0"}


def spdx(name):
    """The SPDX id of a license the source names, or None ('proprietary',
    'other' and URLs to terms of use are not licenses a record can name)."""
    if not name:
        return None
    return SPDX.get(name.strip().rstrip(".").lower())


if __name__ == "__main__":
    main()
