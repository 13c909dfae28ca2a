//! Realistic generated holdings, for the demo and the benchmarks.
//!
//! Words follow a Zipf-like law over a vocabulary of real research terms
//! followed by a long tail of rarer ones, as titles and abstracts do: a few
//! words are everywhere, most are rare. Output is deterministic for a seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// An institution profile: what its holdings are about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// A national polar data center: sea ice, ice cores, glaciers.
    Polar,
    /// A university: a mix of disciplines.
    University,
    /// A genomics institute: sequencing studies, mostly restricted.
    Genomics,
}

const COMMON: &[&str] = &[
    "data",
    "analysis",
    "model",
    "observations",
    "measurements",
    "survey",
    "time",
    "series",
    "climate",
    "temperature",
    "high",
    "resolution",
    "global",
    "regional",
    "monthly",
    "daily",
    "annual",
    "network",
    "samples",
    "study",
    "dataset",
    "field",
    "satellite",
    "station",
    "ocean",
    "surface",
    "water",
    "soil",
    "species",
    "population",
    "gene",
    "expression",
    "cells",
    "protein",
    "structure",
    "energy",
    "carbon",
    "flux",
    "simulation",
    "experiment",
    "sea",
    "ice",
    "snow",
    "glacier",
    "permafrost",
    "arctic",
    "antarctic",
    "atmosphere",
    "aerosol",
    "precipitation",
    "wind",
    "radar",
    "altimetry",
    "thickness",
    "velocity",
    "mass",
    "balance",
    "core",
    "isotopes",
    "sediment",
    "marine",
    "coastal",
    "river",
    "lake",
    "forest",
    "vegetation",
    "biodiversity",
    "microbial",
    "genome",
    "sequencing",
    "variants",
    "cohort",
    "tumour",
    "clinical",
    "rna",
    "dna",
    "methylation",
    "single",
    "cell",
    "imaging",
    "microscopy",
    "spectroscopy",
    "crystal",
    "materials",
    "alloy",
    "catalyst",
    "perovskite",
    "band",
    "gap",
    "density",
    "functional",
    "theory",
    "quantum",
    "thermal",
    "conductivity",
    "urban",
    "health",
    "survey",
    "panel",
    "economic",
    "social",
    "language",
    "corpus",
    "archaeology",
    "excavation",
    "seismic",
    "earthquake",
    "volcano",
    "magnetic",
    "gravity",
    "drilling",
    "borehole",
    "paleoclimate",
    "holocene",
    "reanalysis",
    "forecast",
    "hydrology",
];

const TAIL_SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ne", "ra", "ti", "so", "ve", "du", "pa", "gri", "tal", "bor", "fen", "mor",
    "sil", "tra", "quin", "zel", "hy", "dro", "lith", "cry", "pho", "gen", "the",
];

/// The disciplines records are filed under.
pub const DISCIPLINES: &[&str] = &[
    "earth",
    "life",
    "physical",
    "health",
    "social",
    "engineering",
    "humanities",
];
const LICENSES: &[&str] = &[
    "CC-BY-4.0",
    "CC0-1.0",
    "CC-BY-SA-4.0",
    "ODbL-1.0",
    "CC-BY-NC-4.0",
];
const FORMATS: &[&str] = &[
    "NetCDF", "CSV", "HDF5", "GeoTIFF", "VCF", "CRAM", "FASTQ", "JSON", "Parquet", "CIF",
];
const SURNAMES: &[&str] = &[
    "Wang", "Li", "Zhang", "Smith", "Garcia", "Müller", "Nansen", "Okafor", "Tanaka", "Kowalski",
    "Silva", "Andersen", "Ivanova", "Haddad", "Nguyen", "Kim", "Rossi", "Dubois", "Larsen", "Chen",
];
const GIVEN: &[&str] = &[
    "Wei", "Anna", "Jonas", "Amara", "Yuki", "Piotr", "Lucia", "Erik", "Sara", "Omar",
];

/// A deterministic generator of records for one institution.
pub struct Generator {
    rng: StdRng,
    profile: Profile,
    vocabulary: Vec<String>,
    cdf: Vec<f64>,
}

impl Generator {
    /// A generator with a Zipf exponent of 1.07 over a 20,000-word vocabulary.
    pub fn new(profile: Profile, seed: u64) -> Self {
        let mut vocabulary: Vec<String> = COMMON.iter().map(|w| (*w).to_owned()).collect();
        let mut tail_rng = StdRng::seed_from_u64(0x5eed);
        while vocabulary.len() < 20_000 {
            let parts = tail_rng.gen_range(2..=4);
            let word: String = (0..parts)
                .map(|_| TAIL_SYLLABLES[tail_rng.gen_range(0..TAIL_SYLLABLES.len())])
                .collect();
            vocabulary.push(word);
        }
        let mut total = 0.0;
        let mut cdf = Vec::with_capacity(vocabulary.len());
        for rank in 1..=vocabulary.len() {
            total += 1.0 / (rank as f64).powf(1.07);
            cdf.push(total);
        }
        for value in &mut cdf {
            *value /= total;
        }
        Self {
            rng: StdRng::seed_from_u64(seed),
            profile,
            vocabulary,
            cdf,
        }
    }

    /// One word drawn from the Zipf law.
    pub fn word(&mut self) -> &str {
        let x: f64 = self.rng.gen();
        let rank = self
            .cdf
            .partition_point(|&c| c < x)
            .min(self.vocabulary.len() - 1);
        &self.vocabulary[rank]
    }

    fn words(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| self.word().to_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.rng.gen_range(0..from.len())]
    }

    /// The `n`th record of this institution, as a JSON Lines value.
    pub fn record(&mut self, n: u64) -> Value {
        let (prefix, publisher, discipline) = match self.profile {
            Profile::Polar => ("PDC", "National Polar Science Data Center", "earth"),
            Profile::University => ("UNI", "University Research Data Repository", ""),
            Profile::Genomics => ("GEN", "Institute of Genomic Medicine", "life"),
        };
        let discipline = if discipline.is_empty() {
            self.pick(DISCIPLINES)
        } else {
            discipline
        };
        let title_len = self.rng.gen_range(4..12);
        let title = capitalise(&self.words(title_len));
        let description_len = self.rng.gen_range(20..60);
        let description = format!("{}.", capitalise(&self.words(description_len)));
        let keywords: Vec<String> = (0..self.rng.gen_range(2..6))
            .map(|_| self.word().to_owned())
            .collect();
        let creators: Vec<Value> = (0..self.rng.gen_range(1..4))
            .map(|_| {
                let name = format!("{}, {}", self.pick(SURNAMES), self.pick(GIVEN));
                json!({"name": name, "affiliation": publisher})
            })
            .collect();
        let year = self.rng.gen_range(1995..=2025);
        let visibility = match self.rng.gen_range(0..100) {
            0..=59 => "public",
            60..=84 => "federation",
            85..=94 => "groups",
            _ => "private",
        };
        let access = match (self.profile, self.rng.gen_range(0..10)) {
            (Profile::Genomics, 0..=6) => "restricted",
            (_, 0..=6) => "open",
            (_, 7..=8) => "registered",
            _ => "restricted",
        };
        let mut record = json!({
            "id": format!("{prefix}-{year}-{n:07}"),
            "title": title,
            "description": description,
            "creators": creators,
            "publisher": publisher,
            "publication_year": year,
            "resource_type": "Dataset",
            "keywords": keywords,
            "disciplines": [discipline],
            "doi": format!("10.5555/{}.{n}", prefix.to_lowercase()),
            "license": self.pick(LICENSES),
            "access": access,
            "visibility": visibility,
            "size_bytes": self.rng.gen_range(1_000u64..5_000_000_000_000),
            "file_count": self.rng.gen_range(1u64..10_000),
            "formats": [self.pick(FORMATS)],
            "project": capitalise(&self.words(3)),
            "updated_at": format!("{}-{:02}-{:02}T{:02}:00:00Z", year.max(2015), self.rng.gen_range(1..=12), self.rng.gen_range(1..=28), self.rng.gen_range(0..24)),
        });
        if visibility == "groups" {
            record["groups"] =
                json!([self.pick(&["polar-consortium", "biomed-consortium", "materials-network"])]);
        }
        if matches!(self.profile, Profile::Polar | Profile::University) && self.rng.gen_bool(0.7) {
            let west = self.rng.gen_range(-180.0..170.0f64).round();
            let south = self.rng.gen_range(-90.0..80.0f64).round();
            let east = (west + self.rng.gen_range(1.0..40.0f64)).min(180.0).round();
            let north = (south + self.rng.gen_range(1.0..20.0f64)).min(90.0).round();
            record["spatial"] =
                json!([{"west": west, "south": south, "east": east, "north": north}]);
            let start = self.rng.gen_range(1950..2020);
            record["temporal"] = json!({"start": start.to_string(), "end": (start + self.rng.gen_range(0..10)).to_string()});
        }
        record
    }
}

/// Records of a federation-like mix of institutions, interleaved: half
/// from a university, three in ten from a polar data center, two in ten
/// from a genomics institute. Ids are unique across the mix, and output is
/// deterministic for a seed.
pub struct Mix {
    university: Generator,
    polar: Generator,
    genomics: Generator,
}

impl Mix {
    pub fn new(seed: u64) -> Self {
        Self {
            university: Generator::new(Profile::University, seed),
            polar: Generator::new(Profile::Polar, seed.wrapping_add(1)),
            genomics: Generator::new(Profile::Genomics, seed.wrapping_add(2)),
        }
    }

    /// The `n`th record of the mix.
    pub fn record(&mut self, n: u64) -> Value {
        match n % 10 {
            0..=4 => self.university.record(n),
            5..=7 => self.polar.record(n),
            _ => self.genomics.record(n),
        }
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_records_are_valid_and_deterministic() {
        let mut a = Generator::new(Profile::Polar, 7);
        let mut b = Generator::new(Profile::Polar, 7);
        for n in 0..200 {
            let record = a.record(n);
            assert_eq!(record, b.record(n));
            meridian_core::record::parse_json_line(&record.to_string())
                .unwrap_or_else(|e| panic!("record {n} invalid: {e}\n{record}"));
        }
    }

    #[test]
    fn a_mix_has_every_profile_and_unique_ids() {
        let mut mix = Mix::new(3);
        let records: Vec<Value> = (0..100).map(|n| mix.record(n)).collect();
        let ids: std::collections::BTreeSet<&str> =
            records.iter().filter_map(|r| r["id"].as_str()).collect();
        assert_eq!(ids.len(), records.len());
        for prefix in ["UNI-", "PDC-", "GEN-"] {
            assert!(
                ids.iter().any(|id| id.starts_with(prefix)),
                "no {prefix} record"
            );
        }
    }

    #[test]
    fn words_follow_a_skewed_law() {
        let mut generator = Generator::new(Profile::University, 1);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..20_000 {
            *counts.entry(generator.word().to_owned()).or_insert(0u32) += 1;
        }
        let top = counts.get("data").copied().unwrap_or(0);
        assert!(top > 1000, "the commonest word appears often: {top}");
        assert!(
            counts.len() > 2000,
            "and the tail is long: {} distinct",
            counts.len()
        );
    }
}
