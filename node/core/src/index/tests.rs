//! Behaviour of the holdings index on small fixed corpora: every assertion
//! names the exact hits a user would get.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use tempfile::TempDir;

use super::*;
use crate::proto::{Access, BoundingBox, Creator, TemporalCoverage, Visibility};
use crate::query::{Scope, Sort};

const HERE: &str = "here.example";

fn record(id: &str) -> DatasetRecord {
    DatasetRecord {
        origin: HERE.into(),
        id: id.into(),
        version: 1,
        title: format!("Dataset {id}"),
        description: String::new(),
        creators: vec![Creator {
            name: "Doe, Jane".into(),
            ..Default::default()
        }],
        publisher: "Data Center".into(),
        publication_year: 2020,
        resource_type: "Dataset".into(),
        license: "CC-BY-4.0".into(),
        access: Access::Open as i32,
        visibility: Visibility::Public as i32,
        updated_at: "2023-01-01T00:00:00Z".into(),
        size_bytes: 1,
        ..Default::default()
    }
}

fn bbox(west: f64, south: f64, east: f64, north: f64) -> BoundingBox {
    BoundingBox {
        west,
        south,
        east,
        north,
    }
}

fn temporal(start: &str, end: &str) -> Option<TemporalCoverage> {
    Some(TemporalCoverage {
        start: start.into(),
        end: end.into(),
    })
}

fn operator() -> Viewer {
    Viewer::Operator {
        node: HERE.parse().unwrap(),
    }
}

struct Fixture {
    index: Arc<HoldingsIndex>,
    _dir: TempDir,
}

fn upserts(records: Vec<DatasetRecord>) -> Vec<IndexOp> {
    records.into_iter().map(IndexOp::Upsert).collect()
}

fn fixture(records: Vec<DatasetRecord>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(HoldingsIndex::open(dir.path()).unwrap());
    index.apply(upserts(records), &BTreeMap::new()).unwrap();
    Fixture { index, _dir: dir }
}

impl Fixture {
    /// `text` prepared for the operator: facets, a page of 100.
    fn prepare(&self, text: &str) -> PreparedSearch {
        let request = SearchRequest {
            text: text.into(),
            facets: true,
            limit: 100,
            ..Default::default()
        };
        self.index.prepare(&request, &operator()).unwrap()
    }

    fn add(&self, records: Vec<DatasetRecord>) {
        self.index
            .apply(upserts(records), &BTreeMap::new())
            .unwrap();
    }

    fn search(&self, request: SearchRequest, viewer: &Viewer) -> SearchResults {
        self.index.search(&request, viewer).unwrap()
    }

    /// Ids of every hit the operator gets, in order; the answer must fit
    /// one page and its total must agree.
    fn ids(&self, request: SearchRequest) -> Vec<String> {
        self.ids_as(request, &operator())
    }

    fn ids_as(&self, request: SearchRequest, viewer: &Viewer) -> Vec<String> {
        let results = self.search(
            SearchRequest {
                limit: MAX,
                ..request
            },
            viewer,
        );
        assert!(results.next_cursor.is_none());
        assert_eq!(results.total, results.hits.len() as u64);
        results.hits.into_iter().map(|hit| hit.id).collect()
    }

    fn id_set(&self, request: SearchRequest) -> BTreeSet<String> {
        self.ids(request).into_iter().collect()
    }

    fn text(&self, text: &str) -> BTreeSet<String> {
        self.id_set(SearchRequest {
            text: text.into(),
            ..Default::default()
        })
    }
}

const MAX: usize = crate::query::MAX_LIMIT;

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

// ---------------------------------------------------------------- spatial

fn spatial_corpus() -> Fixture {
    let with_boxes = |id: &str, boxes: Vec<BoundingBox>| DatasetRecord {
        spatial: boxes,
        ..record(id)
    };
    fixture(vec![
        with_boxes("pacific-crossing", vec![bbox(170.0, -10.0, -170.0, 10.0)]),
        with_boxes("fiji-east", vec![bbox(-179.0, -20.0, -175.0, -15.0)]),
        with_boxes("fiji-west", vec![bbox(176.0, -20.0, 179.0, -15.0)]),
        with_boxes("greenwich", vec![bbox(-1.0, 50.0, 1.0, 52.0)]),
        with_boxes("alaska", vec![bbox(-170.0, 55.0, -140.0, 70.0)]),
        with_boxes("square", vec![bbox(10.0, 10.0, 20.0, 20.0)]),
        with_boxes("edge-180", vec![bbox(170.0, 20.0, 180.0, 30.0)]),
        with_boxes(
            "two-boxes",
            vec![bbox(30.0, 30.0, 40.0, 40.0), bbox(60.0, 60.0, 70.0, 70.0)],
        ),
        record("nowhere"),
    ])
}

fn in_box(west: f64, south: f64, east: f64, north: f64) -> SearchRequest {
    SearchRequest {
        bbox: Some(bbox(west, south, east, north)),
        ..Default::default()
    }
}

#[test]
fn a_query_box_crossing_the_antimeridian_finds_boxes_on_both_sides() {
    let f = spatial_corpus();
    assert_eq!(
        f.id_set(in_box(175.0, -25.0, -178.0, -10.0)),
        set(&["fiji-east", "fiji-west", "pacific-crossing"])
    );
    assert_eq!(
        f.id_set(in_box(179.0, 0.0, -179.0, 1.0)),
        set(&["pacific-crossing"])
    );
}

#[test]
fn a_record_box_crossing_the_antimeridian_is_found_from_either_side() {
    let f = spatial_corpus();
    assert_eq!(
        f.id_set(in_box(-175.0, 0.0, -172.0, 5.0)),
        set(&["pacific-crossing"])
    );
    assert_eq!(
        f.id_set(in_box(171.0, 0.0, 172.0, 5.0)),
        set(&["pacific-crossing"])
    );
    // Between its edges the long way round: nothing.
    assert_eq!(f.id_set(in_box(160.0, 0.0, 169.0, 5.0)), set(&[]));
    assert_eq!(
        f.id_set(in_box(-10.0, 40.0, 10.0, 60.0)),
        set(&["greenwich"])
    );
}

#[test]
fn touching_edges_intersect() {
    let f = spatial_corpus();
    assert_eq!(f.id_set(in_box(20.0, 20.0, 25.0, 25.0)), set(&["square"]));
    assert_eq!(f.id_set(in_box(20.000_001, 20.0, 25.0, 25.0)), set(&[]));
    assert_eq!(f.id_set(in_box(0.0, 5.0, 10.0, 10.0)), set(&["square"]));
    // Longitude 180 and -180 are one meridian.
    assert_eq!(
        f.id_set(in_box(-180.0, 25.0, -175.0, 26.0)),
        set(&["edge-180"])
    );
}

#[test]
fn each_box_of_a_record_is_matched_on_its_own() {
    let f = spatial_corpus();
    let check = |f: &Fixture| {
        // Longitudes of one box with latitudes of the other: no box there.
        assert_eq!(f.id_set(in_box(61.0, 31.0, 62.0, 32.0)), set(&[]));
        assert_eq!(f.id_set(in_box(31.0, 61.0, 32.0, 62.0)), set(&[]));
        assert_eq!(
            f.id_set(in_box(35.0, 35.0, 36.0, 36.0)),
            set(&["two-boxes"])
        );
        assert_eq!(
            f.id_set(in_box(65.0, 65.0, 66.0, 66.0)),
            set(&["two-boxes"])
        );
    };
    check(&f);
    // The correlation survives segment merges.
    f.add(vec![record("filler-1")]);
    f.add(vec![DatasetRecord {
        spatial: vec![bbox(-5.0, -5.0, 5.0, 5.0), bbox(100.0, -80.0, 101.0, -79.0)],
        ..record("filler-2")
    }]);
    f.index.merge_segments().unwrap();
    assert_eq!(f.index.reader.searcher().segment_readers().len(), 1);
    check(&f);
}

#[test]
fn spatial_totals_and_facets_count_exact_matches_only() {
    let f = spatial_corpus();
    // The latitude prefilter admits two-boxes here; the exact check rejects it.
    let results = f.search(
        SearchRequest {
            facets: true,
            ..in_box(61.0, 31.0, 62.0, 32.0)
        },
        &operator(),
    );
    assert_eq!(results.total, 0);
    assert!(results.facets["access"].is_empty());
    let results = f.search(
        SearchRequest {
            facets: true,
            ..in_box(175.0, -25.0, -178.0, -10.0)
        },
        &operator(),
    );
    assert_eq!(results.total, 3);
    assert_eq!(results.facets["access"], [("open".to_owned(), 3)]);
}

// --------------------------------------------------------------- temporal

fn temporal_corpus() -> Fixture {
    let covering = |id: &str, t| DatasetRecord {
        temporal: t,
        ..record(id)
    };
    fixture(vec![
        covering("decade", temporal("2010-10-01", "2020-04-30")),
        covering("from-2015", temporal("2015", "")),
        covering("until-2000", temporal("", "2000-06-30")),
        covering(
            "instant",
            temporal("2021-03-14T08:00:00Z", "2021-03-14T08:00:00Z"),
        ),
        covering("no-coverage", None),
        covering("empty-coverage", temporal("", "")),
    ])
}

fn during(from: Option<&str>, to: Option<&str>) -> SearchRequest {
    SearchRequest {
        time_from: from.map(str::to_owned),
        time_to: to.map(str::to_owned),
        ..Default::default()
    }
}

#[test]
fn temporal_overlap_is_inclusive_at_the_exact_boundaries() {
    let f = temporal_corpus();
    assert_eq!(
        f.id_set(during(Some("2020-04-30"), None)),
        set(&["decade", "from-2015", "instant"])
    );
    assert_eq!(
        f.id_set(during(Some("2020-05-01"), None)),
        set(&["from-2015", "instant"])
    );
    assert_eq!(
        f.id_set(during(None, Some("2010-10-01"))),
        set(&["decade", "until-2000"])
    );
    assert_eq!(
        f.id_set(during(None, Some("2010-09-30"))),
        set(&["until-2000"])
    );
    assert_eq!(
        f.id_set(during(
            Some("2021-03-14T08:00:00Z"),
            Some("2021-03-14T08:00:00Z")
        )),
        set(&["from-2015", "instant"])
    );
    assert_eq!(
        f.id_set(during(Some("2021-03-14T08:00:01Z"), None)),
        set(&["from-2015"])
    );
    assert_eq!(
        f.id_set(during(Some("2000-06-30"), Some("2000-06-30"))),
        set(&["until-2000"])
    );
    assert_eq!(f.id_set(during(Some("2000-07-01"), Some("2009"))), set(&[]));
}

#[test]
fn open_ranges_match_open_coverage_and_no_coverage_never_matches() {
    let f = temporal_corpus();
    let covered = set(&["decade", "from-2015", "until-2000", "instant"]);
    assert_eq!(f.id_set(during(Some("1900"), Some("3000"))), covered);
    assert_eq!(f.id_set(during(Some("0001"), None)), covered);
    assert_eq!(f.id_set(during(None, Some("9999"))), covered);
    assert_eq!(f.id_set(during(Some("2500"), None)), set(&["from-2015"]));
    assert_eq!(f.id_set(during(None, Some("1000"))), set(&["until-2000"]));
    // Without a temporal filter every record matches.
    assert_eq!(f.id_set(during(None, None)).len(), 6);
}

// ------------------------------------------------------- year and filters

#[test]
fn year_range_is_inclusive_and_open_ended() {
    let f = fixture(
        [2018, 2019, 2020, 2021]
            .into_iter()
            .map(|year| DatasetRecord {
                publication_year: year,
                ..record(&format!("y{year}"))
            })
            .collect(),
    );
    let years = |from, to| {
        f.id_set(SearchRequest {
            year: Some((from, to)),
            ..Default::default()
        })
    };
    assert_eq!(years(Some(2019), Some(2020)), set(&["y2019", "y2020"]));
    assert_eq!(years(None, Some(2018)), set(&["y2018"]));
    assert_eq!(years(Some(2021), None), set(&["y2021"]));
    assert_eq!(years(Some(2022), None), set(&[]));
    assert_eq!(years(None, None).len(), 4);
}

fn filter_corpus() -> Fixture {
    let strings = |values: &[&str]| values.iter().map(|v| (*v).to_owned()).collect();
    let make = |id: &str,
                origin: &str,
                disciplines: &[&str],
                access: Access,
                license: &str,
                formats: &[&str],
                year| {
        DatasetRecord {
            origin: origin.into(),
            disciplines: strings(disciplines),
            access: access as i32,
            license: license.into(),
            formats: strings(formats),
            publication_year: year,
            ..record(id)
        }
    };
    fixture(vec![
        make(
            "a",
            "node-a",
            &["earth"],
            Access::Open,
            "CC-BY-4.0",
            &["NetCDF"],
            2019,
        ),
        make(
            "b",
            "node-b",
            &["earth", "ocean"],
            Access::Registered,
            "CC0-1.0",
            &["CSV"],
            2020,
        ),
        make(
            "c",
            "node-a",
            &["life"],
            Access::Embargoed,
            "CC-BY-4.0",
            &["CSV", "NetCDF"],
            2020,
        ),
        make("d", "node-b", &["ocean"], Access::Restricted, "", &[], 2021),
    ])
}

#[test]
fn each_filter_ors_its_values_and_filters_and_together() {
    let f = filter_corpus();
    let values = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let q = SearchRequest::default;
    let disciplines = |v: &[&str]| SearchRequest {
        disciplines: values(v),
        ..q()
    };
    assert_eq!(f.id_set(disciplines(&["earth"])), set(&["a", "b"]));
    assert_eq!(
        f.id_set(disciplines(&["earth", "life"])),
        set(&["a", "b", "c"])
    );
    assert_eq!(f.id_set(disciplines(&["astronomy"])), set(&[]));
    let origins = SearchRequest {
        origins: values(&["node-b"]),
        ..q()
    };
    assert_eq!(f.id_set(origins), set(&["b", "d"]));
    let access = |v: &[&str]| SearchRequest {
        access: v
            .iter()
            .map(|name| crate::record::parse_access(name).expect("an access name"))
            .collect(),
        ..q()
    };
    assert_eq!(f.id_set(access(&["open"])), set(&["a"]));
    assert_eq!(
        f.id_set(access(&["registered", "ACCESS_RESTRICTED"])),
        set(&["b", "d"])
    );
    let licenses = SearchRequest {
        licenses: values(&["CC-BY-4.0"]),
        ..q()
    };
    assert_eq!(f.id_set(licenses), set(&["a", "c"]));
    let formats = |v: &[&str]| SearchRequest {
        formats: values(v),
        ..q()
    };
    assert_eq!(f.id_set(formats(&["NetCDF"])), set(&["a", "c"]));
    assert_eq!(f.id_set(formats(&["CSV"])), set(&["b", "c"]));
    let across = SearchRequest {
        formats: values(&["CSV"]),
        ..disciplines(&["earth"])
    };
    assert_eq!(f.id_set(across), set(&["b"]));
    let across = SearchRequest {
        origins: values(&["node-a"]),
        ..access(&["embargoed", "open"])
    };
    assert_eq!(f.id_set(across), set(&["a", "c"]));
}

#[test]
fn facets_count_every_visible_match_and_agree_with_totals() {
    let f = filter_corpus();
    let pairs = |v: &[(&str, u64)]| {
        v.iter()
            .map(|(value, count)| ((*value).to_owned(), *count))
            .collect::<Vec<_>>()
    };
    let all = f.search(
        SearchRequest {
            facets: true,
            limit: 1,
            ..Default::default()
        },
        &operator(),
    );
    assert_eq!(all.total, 4);
    assert_eq!(all.hits.len(), 1, "facets cover more than the page");
    let facets = &all.facets;
    assert_eq!(
        facets.keys().collect::<Vec<_>>(),
        [
            "access",
            "discipline",
            "format",
            "license",
            "origin",
            "year"
        ]
    );
    assert_eq!(
        facets["discipline"],
        pairs(&[("earth", 2), ("ocean", 2), ("life", 1)])
    );
    assert_eq!(facets["origin"], pairs(&[("node-a", 2), ("node-b", 2)]));
    assert_eq!(
        facets["access"],
        pairs(&[
            ("embargoed", 1),
            ("open", 1),
            ("registered", 1),
            ("restricted", 1)
        ])
    );
    assert_eq!(
        facets["license"],
        pairs(&[("CC-BY-4.0", 2), ("CC0-1.0", 1)])
    );
    assert_eq!(facets["format"], pairs(&[("CSV", 2), ("NetCDF", 2)]));
    assert_eq!(
        facets["year"],
        pairs(&[("2020", 2), ("2019", 1), ("2021", 1)])
    );

    let filtered = f.search(
        SearchRequest {
            facets: true,
            disciplines: vec!["earth".into()],
            ..Default::default()
        },
        &operator(),
    );
    assert_eq!(filtered.total, 2);
    assert_eq!(filtered.hits.len(), 2);
    let access_sum: u64 = filtered.facets["access"].iter().map(|(_, n)| n).sum();
    assert_eq!(access_sum, filtered.total);
    assert_eq!(
        filtered.facets["discipline"],
        pairs(&[("earth", 2), ("ocean", 1)])
    );
    assert_eq!(
        filtered.facets["format"],
        pairs(&[("CSV", 1), ("NetCDF", 1)])
    );

    // Counts without a page at all.
    let counts_only = f.search(
        SearchRequest {
            facets: true,
            limit: 0,
            ..Default::default()
        },
        &operator(),
    );
    assert!(counts_only.hits.is_empty() && counts_only.next_cursor.is_none());
    assert_eq!(counts_only.total, 4);
    assert_eq!(counts_only.facets, all.facets);
}

#[test]
fn facets_add_up_across_segments() {
    let f = filter_corpus();
    f.add(vec![DatasetRecord {
        disciplines: vec!["earth".into()],
        ..record("e")
    }]);
    assert!(f.index.reader.searcher().segment_readers().len() > 1);
    let results = f.search(
        SearchRequest {
            facets: true,
            ..Default::default()
        },
        &operator(),
    );
    assert_eq!(results.total, 5);
    assert_eq!(results.facets["discipline"][0], ("earth".to_owned(), 3));
    assert_eq!(results.facets["access"][0], ("open".to_owned(), 2));
}

#[test]
fn facets_count_exactly_over_many_blocks_and_wide_year_ranges() {
    let f = fixture(
        (0..1300)
            .map(|n| DatasetRecord {
                disciplines: vec![["earth", "life", "space"][n % 3].to_owned()],
                formats: if n % 2 == 0 {
                    vec!["CSV".into(), "JSON".into()]
                } else {
                    Vec::new()
                },
                publication_year: if n % 100 == 0 { 1 } else { 9000 },
                ..record(&format!("m{n:04}"))
            })
            .collect(),
    );
    let results = f.search(
        SearchRequest {
            facets: true,
            text: "-title:m0007".into(),
            ..Default::default()
        },
        &operator(),
    );
    let counts =
        |name: &str| -> BTreeMap<String, u64> { results.facets[name].iter().cloned().collect() };
    assert_eq!(results.total, 1299);
    assert_eq!(
        counts("discipline"),
        BTreeMap::from([
            ("earth".into(), 434),
            ("life".into(), 432),
            ("space".into(), 433)
        ])
    );
    assert_eq!(
        counts("format"),
        BTreeMap::from([("CSV".into(), 650), ("JSON".into(), 650)])
    );
    assert_eq!(
        counts("year"),
        BTreeMap::from([("1".into(), 13), ("9000".into(), 1286)])
    );
}

// ------------------------------------------------------------- visibility

fn visibility_corpus() -> Fixture {
    let shown = |id: &str, visibility: Visibility, groups: &[&str]| DatasetRecord {
        visibility: visibility as i32,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        // The facet value names the record, so a leak shows in the counts.
        disciplines: vec![id.to_owned()],
        description: "permafrost borehole temperatures".into(),
        ..record(id)
    };
    fixture(vec![
        shown("public", Visibility::Public, &[]),
        shown("federation", Visibility::Federation, &[]),
        shown("polar-group", Visibility::Groups, &["polar"]),
        shown("genomics-group", Visibility::Groups, &["genomics"]),
        shown("private", Visibility::Private, &[]),
        shown("unspecified", Visibility::Unspecified, &[]),
    ])
}

#[test]
fn each_viewer_sees_only_what_visibility_allows_in_hits_totals_and_facets() {
    let f = visibility_corpus();
    let peer = |groups: &[&str]| Viewer::peer_of("peer.example", HERE, groups);
    let cases = [
        (Viewer::Anonymous, set(&["public"])),
        (peer(&[]), set(&["public", "federation"])),
        (
            peer(&["polar"]),
            set(&["public", "federation", "polar-group"]),
        ),
        (
            peer(&["polar", "genomics"]),
            set(&["public", "federation", "polar-group", "genomics-group"]),
        ),
        (peer(&["other"]), set(&["public", "federation"])),
        (
            operator(),
            set(&[
                "public",
                "federation",
                "polar-group",
                "genomics-group",
                "private",
                "unspecified",
            ]),
        ),
    ];
    for (viewer, expected) in cases {
        for text in ["", "permafrost"] {
            let results = f.search(
                SearchRequest {
                    text: text.into(),
                    facets: true,
                    limit: MAX,
                    ..Default::default()
                },
                &viewer,
            );
            let hits: BTreeSet<String> = results.hits.iter().map(|h| h.id.clone()).collect();
            assert_eq!(hits, expected, "{viewer:?} {text:?}");
            assert_eq!(results.total, expected.len() as u64, "{viewer:?}");
            let faceted: BTreeSet<String> = results.facets["discipline"]
                .iter()
                .map(|(value, _)| value.clone())
                .collect();
            assert_eq!(faceted, expected, "{viewer:?}");
            let access_sum: u64 = results.facets["access"].iter().map(|(_, n)| n).sum();
            assert_eq!(access_sum, expected.len() as u64, "{viewer:?}");
        }
    }
    // A term only a hidden record has finds nothing, not even a count.
    let hidden = f.search(
        SearchRequest {
            text: "private".into(),
            facets: true,
            ..Default::default()
        },
        &Viewer::Anonymous,
    );
    assert_eq!(hidden.total, 0);
    assert!(hidden.facets.values().all(Vec::is_empty));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The index's filter and the rule (`Viewer::may_see`) agree on real
    /// indexed records: every viewer finds exactly the records the rule
    /// lets it see, in hits and in the total.
    #[test]
    fn the_index_shows_each_viewer_what_the_rule_allows(
        audiences in proptest::collection::vec(
            (prop_oneof![Just(-1), 0..=4, Just(9)], proptest::sample::subsequence(vec!["a", "b", "c"], 0..=3)),
            1..24,
        ),
        viewer_groups in proptest::collection::vec(proptest::sample::subsequence(vec!["a", "b", "c"], 0..=3), 1..4),
    ) {
        let records: Vec<DatasetRecord> = audiences
            .iter()
            .enumerate()
            .map(|(n, (visibility, groups))| DatasetRecord {
                visibility: *visibility,
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                ..record(&format!("r{n}"))
            })
            .collect();
        let f = fixture(records.clone());
        let mut viewers = vec![Viewer::Anonymous, operator()];
        viewers.extend(
            viewer_groups
                .into_iter()
                .map(|groups| Viewer::peer_of("peer.example", HERE, &groups)),
        );
        for viewer in viewers {
            let expected: BTreeSet<String> = records
                .iter()
                .filter(|r| viewer.may_see(r))
                .map(|r| r.id.clone())
                .collect();
            let found: BTreeSet<String> = f
                .ids_as(SearchRequest::default(), &viewer)
                .into_iter()
                .collect();
            prop_assert_eq!(&found, &expected, "{:?}", viewer);
        }
    }
}

#[test]
fn hits_carry_their_access_and_visibility() {
    let f = visibility_corpus();
    let results = f.search(
        SearchRequest {
            text: "title:federation".into(),
            ..Default::default()
        },
        &operator(),
    );
    let hit = &results.hits[0];
    assert_eq!(
        (hit.id.as_str(), hit.visibility, hit.access),
        ("federation", Visibility::Federation, Access::Open)
    );
    assert_eq!(
        (hit.origin.as_str(), hit.version, hit.publication_year),
        (HERE, 1, 2020)
    );
}

#[test]
fn local_scope_is_own_holdings_and_federation_is_everything_held() {
    let f = fixture(vec![
        record("own-1"),
        DatasetRecord {
            visibility: Visibility::Private as i32,
            ..record("own-private")
        },
        DatasetRecord {
            origin: "there.example".into(),
            ..record("replica-1")
        },
        DatasetRecord {
            origin: "there.example".into(),
            ..record("replica-2")
        },
    ]);
    let scoped = |scope| SearchRequest {
        scope,
        ..Default::default()
    };
    let local = || Scope::Local { node: HERE.into() };
    assert_eq!(f.id_set(scoped(local())), set(&["own-1", "own-private"]));
    let all = set(&["own-1", "own-private", "replica-1", "replica-2"]);
    assert_eq!(f.id_set(scoped(Scope::Federation)), all);
    assert_eq!(f.id_set(scoped(Scope::Live)), all);
    let anonymous: BTreeSet<String> = f
        .ids_as(scoped(local()), &Viewer::Anonymous)
        .into_iter()
        .collect();
    assert_eq!(anonymous, set(&["own-1"]));
}

// ------------------------------------------------------------ query text

fn text_corpus() -> Fixture {
    let creator = |name: &str| Creator {
        name: name.into(),
        ..Default::default()
    };
    fixture(vec![
        DatasetRecord {
            title: "Glacier mass balance of Svalbard".into(),
            description: "Annual surface mass balance from stake networks.".into(),
            keywords: vec!["sea ice".into(), "mass balance".into()],
            creators: vec![creator("Wang, Li")],
            project: "Cryosphere monitoring".into(),
            ..record("t1")
        },
        DatasetRecord {
            title: "Ocean heat content".into(),
            description: "Upper ocean heat content near tidewater glacier fronts.".into(),
            keywords: vec!["sea".into(), "ice".into()],
            creators: vec![creator("Smith, Anna")],
            ..record("t2")
        },
        DatasetRecord {
            title: "Sea ice extent, Weddell Sea".into(),
            description: "Daily extent from passive microwave.".into(),
            creators: vec![creator("Wang, Wei"), creator("Müller, Jörg")],
            ..record("t3")
        },
    ])
}

#[test]
fn free_text_and_fielded_terms_match_their_fields() {
    let f = text_corpus();
    assert_eq!(f.text("glacier"), set(&["t1", "t2"]));
    assert_eq!(f.text("title:glacier"), set(&["t1"]));
    assert_eq!(f.text("description:glacier"), set(&["t2"]));
    assert_eq!(f.text("creator:wang"), set(&["t1", "t3"]));
    assert_eq!(f.text("creator:muller"), set(&["t3"]), "accents fold");
    assert_eq!(f.text("project:cryosphere"), set(&["t1"]));
    assert_eq!(f.text("keyword:sea"), set(&["t1", "t2"]));
    assert_eq!(f.text("glaciers"), set(&["t1", "t2"]), "stemmed");
    assert_eq!(f.text("GLACIER"), set(&["t1", "t2"]));
    assert_eq!(f.text(""), set(&["t1", "t2", "t3"]));
}

#[test]
fn phrases_operators_and_prefixes() {
    let f = text_corpus();
    // Two keywords "sea" and "ice" are not the phrase "sea ice".
    assert_eq!(f.text(r#"keyword:"sea ice""#), set(&["t1"]));
    assert_eq!(f.text(r#""sea ice""#), set(&["t1", "t3"]));
    assert_eq!(f.text("sea-ice"), set(&["t1", "t3"]));
    assert_eq!(f.text("sea ice"), set(&["t1", "t2", "t3"]));
    assert_eq!(f.text("glacier extent"), set(&[]));
    assert_eq!(f.text("glacier OR extent"), set(&["t1", "t2", "t3"]));
    assert_eq!(f.text("wang glacier OR ocean"), set(&["t1"]));
    assert_eq!(f.text("glacier -ocean"), set(&["t1"]));
    assert_eq!(f.text("glacier NOT title:ocean"), set(&["t1"]));
    assert_eq!(f.text("-glacier"), set(&["t3"]));
    // Exclusions alone, a conjunction of them, are taken from everything.
    assert_eq!(f.text("-glacier -ocean"), set(&["t3"]));
    assert_eq!(f.text("-glacier -nowhere"), set(&["t3"]));
    assert_eq!(f.text("NOT (glacier OR ocean)"), set(&["t3"]));
    assert_eq!(f.text("glaci*"), set(&["t1", "t2"]));
    assert_eq!(f.text("title:sval*"), set(&["t1"]));
    assert_eq!(
        f.text(r#"title:"weddell se*""#),
        set(&[]),
        "quotes keep * literal"
    );
    assert_eq!(f.text("creator:(smith OR wei)"), set(&["t2", "t3"]));
    // Punctuation alone constrains nothing.
    assert_eq!(f.text("glacier ;;"), set(&["t1", "t2"]));
}

/// A term without searchable content is read as if it were not written:
/// negated, it excludes nothing; as an alternative, it adds nothing.
#[test]
fn a_punctuation_term_constrains_nothing_negated_or_as_an_alternative() {
    let f = text_corpus();
    let everything = set(&["t1", "t2", "t3"]);
    let glacier = set(&["t1", "t2"]);
    for text in [
        "glacier -!",
        r#"glacier -"–""#,
        "glacier NOT title:;;",
        "glacier -(! ;)",
        "glacier -(! OR ;)",
        "glacier OR !",
        "-! glacier",
    ] {
        assert_eq!(f.text(text), glacier, "{text}");
    }
    assert_eq!(f.text("-(glacier OR !)"), set(&["t3"]));
    assert_eq!(f.text("-!"), everything);
    assert_eq!(f.text("NOT (! OR ;)"), everything);
}

#[test]
fn a_title_match_ranks_above_a_description_match() {
    let f = text_corpus();
    let results = f.search(
        SearchRequest {
            text: "glacier".into(),
            ..Default::default()
        },
        &operator(),
    );
    let order: Vec<&str> = results.hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(order, ["t1", "t2"]);
    assert!(results.hits[0].score > results.hits[1].score);
}

#[test]
fn malformed_queries_are_refused_with_a_position() {
    let f = text_corpus();
    for (text, position) in [
        (r#"title:"sea ice"#, 6),
        ("(glacier", 0),
        ("ice nope:x", 4),
        ("ice AND", 7),
    ] {
        let error = f
            .index
            .search(
                &SearchRequest {
                    text: text.into(),
                    ..Default::default()
                },
                &operator(),
            )
            .unwrap_err();
        match error {
            SearchError::Query {
                position: Some(at), ..
            } => assert_eq!(at, position, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn highlights_mark_the_matched_terms_and_escape_the_text() {
    let f = fixture(vec![
        DatasetRecord {
            title: "Petermann Glacier velocity".into(),
            description: "Ice velocity of <Petermann> Glacier & the glaciers nearby.".into(),
            ..record("h1")
        },
        DatasetRecord {
            title: "Jakobshavn velocity".into(),
            description: "Sentinel-1 offset tracking.".into(),
            ..record("h2")
        },
    ]);
    let snippet = |text: &str| {
        let results = f.search(
            SearchRequest {
                text: text.into(),
                highlight: true,
                ..Default::default()
            },
            &operator(),
        );
        results.hits[0].snippet.clone()
    };
    let glacier = snippet("glacier");
    assert!(glacier.contains("<b>Glacier</b>"), "{glacier}");
    assert!(
        glacier.contains("<b>glaciers</b>"),
        "stemmed match: {glacier}"
    );
    assert!(glacier.contains("&lt;"), "escaped: {glacier}");
    assert!(!glacier.contains("<Petermann>"), "{glacier}");
    let prefix = snippet("glaci*");
    assert!(
        prefix.contains("<b>Glacier</b>") && prefix.contains("<b>glaciers</b>"),
        "{prefix}"
    );
    // Only the title has the term: the title is the snippet.
    let title = snippet("jakobshavn");
    assert_eq!(title, "<b>Jakobshavn</b> velocity");
    // A negated term is not marked.
    let negated = snippet("velocity -jakobshavn");
    assert!(
        negated.contains("<b>velocity</b>") && !negated.contains("<b>Glacier"),
        "{negated}"
    );
    let plain = f.search(
        SearchRequest {
            text: "glacier".into(),
            ..Default::default()
        },
        &operator(),
    );
    assert_eq!(plain.hits[0].snippet, "");
}

// ------------------------------------------------------------- ordering

#[test]
fn sorts_are_descending_with_ties_broken_by_key() {
    let sized = |origin: &str, id: &str, size, updated: &str| DatasetRecord {
        origin: origin.into(),
        size_bytes: size,
        updated_at: updated.into(),
        ..record(id)
    };
    let f = fixture(vec![
        sized("b", "2", 10, "2022-01-01T00:00:00Z"),
        sized("a", "9", 10, "2024-01-01T00:00:00Z"),
        sized("a", "1", 10, "2021-01-01T00:00:00Z"),
        sized("c", "5", 500, "2021-01-01T00:00:00Z"),
        sized("c", "6", 7, ""),
    ]);
    let order = |sort| {
        f.ids(SearchRequest {
            sort,
            ..Default::default()
        })
    };
    assert_eq!(order(Sort::Size), ["5", "1", "9", "2", "6"]);
    assert_eq!(order(Sort::Updated), ["9", "2", "1", "5", "6"]);
    // Equal relevance (no text): key order.
    assert_eq!(order(Sort::Relevance), ["1", "9", "2", "5", "6"]);
}

#[test]
fn ties_across_segments_are_ordered_by_key_at_the_page_boundary() {
    // One commit per record: every record in its own segment, so equal
    // sort values from different segments meet at the page boundary.
    let f = fixture(Vec::new());
    let ids = [
        "07", "03", "11", "01", "09", "05", "02", "10", "04", "08", "06",
    ];
    for (n, id) in ids.iter().enumerate() {
        let size = if n % 4 == 0 { 100 } else { 10 };
        f.add(vec![DatasetRecord {
            size_bytes: size,
            ..record(id)
        }]);
    }
    assert!(f.index.reader.searcher().segment_readers().len() > 1);
    let request = SearchRequest {
        sort: Sort::Size,
        limit: 4,
        ..Default::default()
    };
    let (paged, _) = page_through(&f, request, |_| {});
    assert_eq!(
        paged,
        ["04", "07", "09", "01", "02", "03", "05", "06", "08", "10", "11"]
    );
}

// ------------------------------------------------------------ pagination

/// Pages through `request` until the end, running `between` after each
/// page; returns every hit id in page order and the totals seen.
fn page_through(
    f: &Fixture,
    request: SearchRequest,
    mut between: impl FnMut(usize),
) -> (Vec<String>, Vec<u64>) {
    let mut ids = Vec::new();
    let mut totals = Vec::new();
    let mut after = None;
    for page in 0.. {
        let results = f.search(
            SearchRequest {
                after: after.take(),
                ..request.clone()
            },
            &operator(),
        );
        assert!(results.hits.len() <= request.limit);
        ids.extend(results.hits.into_iter().map(|h| h.id));
        totals.push(results.total);
        match results.next_cursor {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
        between(page);
    }
    (ids, totals)
}

fn glacier_record(n: usize, prefix: &str) -> DatasetRecord {
    DatasetRecord {
        title: format!("glacier {}", "ice ".repeat(n % 5)),
        description: "glacier ".repeat(1 + n % 7),
        size_bytes: (n as u64 * 37) % 11,
        updated_at: format!("2020-01-{:02}T00:00:00Z", 1 + n % 9),
        ..record(&format!("{prefix}{n:02}"))
    }
}

#[test]
fn pages_neither_skip_nor_repeat_while_records_change_underneath() {
    for sort in [Sort::Relevance, Sort::Updated, Sort::Size] {
        let original: Vec<DatasetRecord> = (0..30).map(|n| glacier_record(n, "p")).collect();
        let expected: BTreeSet<String> = original.iter().map(|r| r.id.clone()).collect();
        let f = fixture(original);
        let request = SearchRequest {
            text: "glacier".into(),
            sort,
            limit: 7,
            ..Default::default()
        };
        let mut round = 0;
        let (ids, totals) = page_through(&f, request, |_| {
            round += 1;
            // New records that sort first, last and in between; a removal
            // and an update that changes an original's sort position.
            let mut news: Vec<DatasetRecord> = (0..6)
                .map(|n| glacier_record(n * 3 + round, &format!("new{round}-")))
                .collect();
            news.push(DatasetRecord {
                title: "glacier glacier glacier".into(),
                size_bytes: 1 << 40,
                updated_at: "2030-01-01T00:00:00Z".into(),
                ..record(&format!("top{round}"))
            });
            news.push(DatasetRecord {
                version: 1 + round as u64,
                size_bytes: 1 << 41,
                updated_at: "2031-01-01T00:00:00Z".into(),
                ..glacier_record(round + 10, "p")
            });
            f.add(news);
            f.index
                .apply(
                    vec![IndexOp::Remove {
                        origin: HERE.into(),
                        id: format!("p{:02}", 29 - round),
                    }],
                    &BTreeMap::new(),
                )
                .unwrap();
        });
        let unique: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(unique.len(), ids.len(), "{sort:?}: repeated hits {ids:?}");
        // Removed records leave the snapshot too: every original is shown
        // but those removed before their page came.
        let removed: BTreeSet<String> = (1..=round).map(|r| format!("p{:02}", 29 - r)).collect();
        assert!(unique.is_subset(&expected), "{sort:?}: {ids:?}");
        let kept: BTreeSet<String> = expected.difference(&removed).cloned().collect();
        assert!(
            unique.is_superset(&kept),
            "{sort:?}: skipped {:?}",
            kept.difference(&unique)
        );
        assert!(
            totals.windows(2).all(|w| w[1] <= w[0]) && totals[0] == 30,
            "{sort:?}: {totals:?}"
        );
        assert!(round >= 3, "{sort:?}: {round} pages");
    }
}

/// Issue 9, item 6: a search paged on a held snapshot shows no record
/// deleted, narrowed or revoked after the snapshot was taken.
#[test]
fn revocation_is_final_everywhere_withdrawn_records_leave_held_snapshots() {
    let records: Vec<DatasetRecord> = (0..10).map(|n| glacier_record(n, "p")).collect();
    let f = fixture(records);
    let request = SearchRequest {
        text: "glacier".into(),
        sort: Sort::Size,
        limit: 2,
        ..Default::default()
    };
    let first = f.search(request.clone(), &Viewer::Anonymous);
    let shown: BTreeSet<String> = first.hits.iter().map(|h| h.id.clone()).collect();
    let later: Vec<String> = (0..10)
        .map(|n| format!("p{n:02}"))
        .filter(|id| !shown.contains(id))
        .collect();
    // One deleted, one narrowed to PRIVATE, the rest left as they were.
    f.index
        .apply(
            vec![IndexOp::Remove {
                origin: HERE.into(),
                id: later[0].clone(),
            }],
            &BTreeMap::new(),
        )
        .unwrap();
    let n: usize = later[1][1..].parse().unwrap();
    f.add(vec![DatasetRecord {
        version: 2,
        visibility: Visibility::Private as i32,
        ..glacier_record(n, "p")
    }]);
    let mut after = first.next_cursor;
    let mut rest = BTreeSet::new();
    while let Some(cursor) = after.take() {
        let page = f.search(
            SearchRequest {
                after: Some(cursor),
                ..request.clone()
            },
            &Viewer::Anonymous,
        );
        rest.extend(page.hits.into_iter().map(|h| h.id));
        after = page.next_cursor;
    }
    let expected: BTreeSet<String> = later[2..].iter().cloned().collect();
    assert_eq!(rest, expected);
}

/// Ids of every page after `cursor` of `request` for `viewer`.
fn later_pages(
    f: &Fixture,
    request: &SearchRequest,
    viewer: &Viewer,
    cursor: Option<String>,
) -> BTreeSet<String> {
    let mut after = cursor;
    let mut ids = BTreeSet::new();
    while let Some(cursor) = after.take() {
        let page = f.search(
            SearchRequest {
                after: Some(cursor),
                ..request.clone()
            },
            viewer,
        );
        ids.extend(page.hits.into_iter().map(|h| h.id));
        after = page.next_cursor;
    }
    ids
}

/// A search runs on the searcher it was prepared with: a record narrowed
/// or removed while a page runs, before that page's snapshot is held, is
/// not shown by the later pages either; nor is a snapshot dropped for a
/// revocation while a page of it runs held again without what was
/// withdrawn.
#[test]
fn a_record_withdrawn_while_a_page_runs_is_not_on_the_later_pages() {
    let records: Vec<DatasetRecord> = (0..10).map(|n| glacier_record(n, "p")).collect();
    let f = fixture(records);
    let request = SearchRequest {
        text: "glacier".into(),
        sort: Sort::Size,
        limit: 2,
        ..Default::default()
    };
    // The first page is prepared, then a record it does not show is
    // narrowed to PRIVATE and another removed, then it runs.
    let prepared = f.index.prepare(&request, &Viewer::Anonymous).unwrap();
    // Read in one page, which holds no snapshot.
    let every = f.ids_as(request.clone(), &Viewer::Anonymous);
    let shown: BTreeSet<String> = every[..2].iter().cloned().collect();
    let later: Vec<String> = (0..10)
        .map(|n| format!("p{n:02}"))
        .filter(|id| !shown.contains(id))
        .collect();
    let n: usize = later[0][1..].parse().unwrap();
    f.add(vec![DatasetRecord {
        version: 2,
        visibility: Visibility::Private as i32,
        ..glacier_record(n, "p")
    }]);
    let remove = |id: &str| {
        f.index
            .apply(
                vec![IndexOp::Remove {
                    origin: HERE.into(),
                    id: id.to_owned(),
                }],
                &BTreeMap::new(),
            )
            .unwrap()
    };
    remove(&later[1]);
    let first = prepared.run().unwrap();
    assert_eq!(
        first
            .hits
            .iter()
            .map(|h| h.id.clone())
            .collect::<BTreeSet<_>>(),
        shown
    );
    let rest = later_pages(&f, &request, &Viewer::Anonymous, first.next_cursor);
    let expected: BTreeSet<String> = later[2..].iter().cloned().collect();
    assert_eq!(
        rest, expected,
        "narrowed {} and removed {}",
        later[0], later[1]
    );

    // A second page prepared on a held snapshot, which a revocation drops
    // (its records removed, every snapshot dropped) while the page runs.
    let first = f.search(request.clone(), &Viewer::Anonymous);
    let second = SearchRequest {
        after: first.next_cursor,
        ..request.clone()
    };
    let prepared = f.index.prepare(&second, &Viewer::Anonymous).unwrap();
    let page = f.search(second.clone(), &Viewer::Anonymous);
    let on_page: BTreeSet<String> = page.hits.into_iter().map(|h| h.id).collect();
    let revoked = later[2..]
        .iter()
        .rev()
        .find(|id| !on_page.contains(*id))
        .unwrap()
        .clone();
    remove(&revoked);
    f.index.drop_snapshots();
    let page = prepared.run().unwrap();
    let rest = later_pages(&f, &request, &Viewer::Anonymous, page.next_cursor);
    assert!(
        !rest.contains(&revoked),
        "revoked {revoked} shown: {rest:?}"
    );
}

/// A commit whose reader reload fails is durable all the same: what it
/// withdrew leaves the held snapshots, the page that was running and the
/// searches made before a reload succeeds, and no searcher that may still
/// show it is kept. A later reload settles it.
#[test]
fn a_withdrawal_whose_reload_fails_is_not_shown() {
    use std::sync::atomic::Ordering;
    let request = SearchRequest {
        text: "glacier".into(),
        sort: Sort::Size,
        limit: 2,
        ..Default::default()
    };
    let anonymous = Viewer::Anonymous;
    // A record the first page does not show deleted, another narrowed to
    // PRIVATE, each by a commit the reader fails to load; what they are.
    let withdraw = |f: &Fixture| {
        let every = f.ids_as(request.clone(), &anonymous);
        f.index.fail_reload.store(true, Ordering::Relaxed);
        let removed = f.index.apply(
            vec![IndexOp::Remove {
                origin: HERE.into(),
                id: every[2].clone(),
            }],
            &BTreeMap::new(),
        );
        assert!(removed.is_err());
        let n: usize = every[3][1..].parse().unwrap();
        let narrowed = f.index.apply(
            upserts(vec![DatasetRecord {
                version: 2,
                visibility: Visibility::Private as i32,
                ..glacier_record(n, "p")
            }]),
            &BTreeMap::new(),
        );
        assert!(narrowed.is_err());
        set(&[&every[2], &every[3]])
    };
    let corpus = || fixture((0..10).map(|n| glacier_record(n, "p")).collect());

    // A snapshot held, and a page of it running, when the withdrawals come.
    let f = corpus();
    let held = f.search(request.clone(), &anonymous);
    let second = SearchRequest {
        after: held.next_cursor.clone(),
        ..request.clone()
    };
    let running = f.index.prepare(&second, &anonymous).unwrap();
    let withdrawn = withdraw(&f);
    let rest = later_pages(&f, &request, &anonymous, held.next_cursor);
    assert!(rest.is_disjoint(&withdrawn), "held snapshot: {rest:?}");
    // The page may show what was withdrawn while it ran; its next may not.
    let page = running.run().unwrap();
    let rest = later_pages(&f, &request, &anonymous, page.next_cursor);
    assert!(
        rest.is_disjoint(&withdrawn),
        "page of a held snapshot: {rest:?}"
    );

    // No snapshot held: the first page running when the withdrawals come
    // keeps none, and searches of the reader leave them out.
    let f = corpus();
    let running = f.index.prepare(&request, &anonymous).unwrap();
    let withdrawn = withdraw(&f);
    let page = running.run().unwrap();
    assert!(
        f.index.snapshots.get(snapshot_of(&page)).is_none(),
        "a snapshot kept that may show a withdrawn record"
    );
    let rest = later_pages(&f, &request, &anonymous, page.next_cursor);
    assert!(rest.is_disjoint(&withdrawn), "first page running: {rest:?}");
    let every: BTreeSet<String> = f.ids_as(request.clone(), &anonymous).into_iter().collect();
    assert_eq!(every.len(), 8, "{every:?}");
    assert!(every.is_disjoint(&withdrawn), "new search: {every:?}");

    // Once a reload succeeds, the reader shows the withdrawals itself and
    // snapshots are kept again.
    f.index.fail_reload.store(false, Ordering::Relaxed);
    f.add(Vec::new());
    assert!(f.index.snapshots.unread().unwrap().is_empty());
    assert_eq!(f.ids_as(request.clone(), &anonymous).len(), 8);
    let first = f.search(request.clone(), &anonymous);
    assert!(f.index.snapshots.get(snapshot_of(&first)).is_some());
}

/// While reloads keep failing, the withdrawals searches must leave out
/// pile up: past `MAX_UNREAD` searches are refused, with a message that
/// says why, instead of holding an ever larger set and clause; the first
/// reload that succeeds brings them back.
#[test]
fn searches_are_refused_once_too_many_withdrawals_are_unloaded() {
    use std::sync::atomic::Ordering;
    let request = SearchRequest {
        text: "glacier".into(),
        ..Default::default()
    };
    let anonymous = Viewer::Anonymous;
    let f = fixture((0..4).map(|n| glacier_record(n, "p")).collect());
    f.index.fail_reload.store(true, Ordering::Relaxed);
    let removals = |ids: std::ops::Range<usize>| {
        ids.map(|n| IndexOp::Remove {
            origin: HERE.into(),
            id: format!("gone-{n}"),
        })
        .collect::<Vec<_>>()
    };
    assert!(f
        .index
        .apply(removals(0..MAX_UNREAD), &BTreeMap::new())
        .is_err());
    // At the bound searches still run, leaving the withdrawals out.
    assert_eq!(f.ids_as(request.clone(), &anonymous).len(), 4);
    assert!(f
        .index
        .apply(removals(MAX_UNREAD..MAX_UNREAD + 1), &BTreeMap::new())
        .is_err());
    let refused = f.index.search(&request, &anonymous).err();
    match refused {
        Some(SearchError::Unavailable(message)) => {
            assert!(message.contains("withdrawn"), "{message}")
        }
        other => panic!("searched past the bound: {other:?}"),
    }
    // Memory stays bounded: the set is dropped, not kept growing.
    assert!(f.index.snapshots.unread().is_err());

    f.index.fail_reload.store(false, Ordering::Relaxed);
    f.add(Vec::new());
    assert!(f.index.snapshots.unread().unwrap().is_empty());
    assert_eq!(f.ids_as(request, &anonymous).len(), 4);
}

/// The snapshot id a page's cursor names (`(0, 0)` for none).
fn snapshot_of(page: &SearchResults) -> (u64, u64) {
    let cursor = page.next_cursor.as_deref().expect("a next page");
    Cursor::decode(cursor).unwrap().snapshot.unwrap_or_default()
}

/// Issue 9, item 7: the scores an anonymous caller gets do not depend on
/// records it may not see.
#[test]
fn nothing_about_invisible_records_leaks_through_scores() {
    let visible = DatasetRecord {
        title: "glacier mass balance".into(),
        description: "glacier ice".into(),
        ..record("open")
    };
    let f = fixture(vec![visible, record("other")]);
    let request = SearchRequest {
        text: "glacier".into(),
        ..Default::default()
    };
    let score = |f: &Fixture| f.search(request.clone(), &Viewer::Anonymous).hits[0].score;
    let before = score(&f);
    f.add(
        (0..50)
            .map(|n| DatasetRecord {
                title: format!("glacier survey {n}"),
                visibility: Visibility::Private as i32,
                ..record(&format!("hidden{n}"))
            })
            .collect(),
    );
    assert_eq!(
        score(&f),
        before,
        "a score moved with records the caller cannot see"
    );
    // The operator, who sees everything, keeps corpus statistics.
    assert_eq!(f.search(request.clone(), &operator()).total, 51);
}

#[test]
fn after_a_snapshot_expires_pages_continue_by_sort_value_without_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(HoldingsIndex::open_with(dir.path(), std::time::Duration::ZERO).unwrap());
    let original: Vec<DatasetRecord> = (0..20)
        .map(|n| DatasetRecord {
            size_bytes: 100 + 10 * n as u64,
            ..record(&format!("p{n:02}"))
        })
        .collect();
    let expected: BTreeSet<String> = original.iter().map(|r| r.id.clone()).collect();
    index.apply(upserts(original), &BTreeMap::new()).unwrap();
    let f = Fixture { index, _dir: dir };
    let request = SearchRequest {
        sort: Sort::Size,
        limit: 6,
        ..Default::default()
    };
    let mut round = 0u64;
    let (ids, _) = page_through(&f, request, |_| {
        round += 1;
        // One record larger than any (before every cursor), one the
        // smallest (after every cursor), one with an original's size.
        f.add(vec![
            DatasetRecord {
                size_bytes: 10_000 + round,
                ..record(&format!("big{round}"))
            },
            DatasetRecord {
                size_bytes: round,
                ..record(&format!("small{round}"))
            },
            DatasetRecord {
                size_bytes: 150,
                ..record(&format!("p05-twin{round}"))
            },
        ]);
    });
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "repeated hits {ids:?}");
    assert!(
        unique.is_superset(&expected),
        "skipped {:?}",
        expected.difference(&unique)
    );
    assert!(!unique.iter().any(|id| id.starts_with("big")), "{ids:?}");
    assert!(unique.contains("small1"), "{ids:?}");
}

// ------------------------------------------------------------- writes

#[test]
fn versions_of_one_record_in_one_batch_leave_one_document() {
    let f = fixture(vec![]);
    f.add(vec![
        DatasetRecord {
            title: "first glacier".into(),
            ..record("a")
        },
        DatasetRecord {
            version: 2,
            title: "second moraine".into(),
            ..record("a")
        },
        record("b"),
    ]);
    assert_eq!(f.index.doc_count(), 2);
    assert_eq!(f.text("glacier"), set(&[]));
    assert_eq!(f.text("moraine"), set(&["a"]));
    f.add(vec![
        DatasetRecord {
            version: 3,
            title: "third fjord".into(),
            ..record("a")
        },
        DatasetRecord {
            version: 4,
            deleted: true,
            ..record("b")
        },
    ]);
    assert_eq!(f.index.doc_count(), 1);
    assert_eq!(f.text("moraine"), set(&[]));
    assert_eq!(f.text("fjord"), set(&["a"]));
}

#[test]
fn upsert_replaces_and_remove_and_tombstones_leave_the_index() {
    let f = fixture(vec![
        DatasetRecord {
            title: "alpha glacier".into(),
            ..record("a")
        },
        record("b"),
    ]);
    assert_eq!(f.index.doc_count(), 2);
    f.add(vec![DatasetRecord {
        version: 2,
        title: "alpha moraine".into(),
        ..record("a")
    }]);
    assert_eq!(f.index.doc_count(), 2);
    assert_eq!(f.text("glacier"), set(&[]));
    let moraine = f.search(
        SearchRequest {
            text: "moraine".into(),
            ..Default::default()
        },
        &operator(),
    );
    assert_eq!(
        (moraine.hits[0].id.as_str(), moraine.hits[0].version),
        ("a", 2)
    );

    f.index
        .apply(
            vec![IndexOp::Remove {
                origin: HERE.into(),
                id: "b".into(),
            }],
            &BTreeMap::new(),
        )
        .unwrap();
    assert_eq!(f.index.doc_count(), 1);
    assert_eq!(f.text(""), set(&["a"]));

    f.add(vec![DatasetRecord {
        version: 3,
        deleted: true,
        ..record("a")
    }]);
    assert_eq!(f.index.doc_count(), 0);
    assert_eq!(f.text(""), set(&[]));

    // Within one batch the last write wins; same id at another origin is
    // another record.
    f.add(vec![
        record("c"),
        DatasetRecord {
            version: 2,
            ..record("c")
        },
        DatasetRecord {
            origin: "there.example".into(),
            ..record("c")
        },
    ]);
    assert_eq!(f.index.doc_count(), 2);
    let versions: BTreeSet<(String, u64)> = f
        .search(SearchRequest::default(), &operator())
        .hits
        .into_iter()
        .map(|h| (h.origin, h.version))
        .collect();
    assert_eq!(
        versions,
        BTreeSet::from([(HERE.to_owned(), 2), ("there.example".to_owned(), 1)])
    );
}

#[test]
fn cursors_and_records_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cursors = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
        pairs.iter().map(|(o, n)| ((*o).to_owned(), *n)).collect()
    };
    {
        let index = HoldingsIndex::open(dir.path()).unwrap();
        assert!(index.cursors().is_empty());
        index
            .apply(
                upserts(vec![record("a"), record("b")]),
                &cursors(&[("here", 5)]),
            )
            .unwrap();
        index.apply(Vec::new(), &cursors(&[("there", 3)])).unwrap();
        index
            .apply(upserts(vec![record("c")]), &cursors(&[("here", 9)]))
            .unwrap();
        assert_eq!(index.cursors(), cursors(&[("here", 9), ("there", 3)]));
        // Dropped without any shutdown step, as a crash would leave it.
    }
    let index = HoldingsIndex::open(dir.path()).unwrap();
    assert_eq!(index.cursors(), cursors(&[("here", 9), ("there", 3)]));
    assert_eq!(index.doc_count(), 3);
    drop(index);

    let fresh = HoldingsIndex::create_fresh(dir.path()).unwrap();
    assert!(fresh.cursors().is_empty());
    assert_eq!(fresh.doc_count(), 0);
    // A new index compresses stored documents in small blocks.
    let settings = fresh.reader.searcher().index().settings().clone();
    assert_eq!(settings.docstore_blocksize, super::STORE_BLOCK_BYTES);
}

#[test]
fn an_index_of_another_schema_version_is_refused_with_the_remedy() {
    let dir = tempfile::tempdir().unwrap();
    drop(HoldingsIndex::open(dir.path()).unwrap());
    {
        let index = tantivy::Index::open_in_dir(dir.path()).unwrap();
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 50_000_000).unwrap();
        let mut prepared = writer.prepare_commit().unwrap();
        prepared.set_payload(r#"{"schema":999,"cursors":{}}"#);
        prepared.commit().unwrap();
    }
    let error = HoldingsIndex::open(dir.path()).err().unwrap();
    let message = error.to_string();
    assert!(
        matches!(error, IndexError::SchemaVersion { .. }),
        "{message}"
    );
    assert!(
        message.contains("999") && message.contains("meridian index rebuild"),
        "{message}"
    );
    // A rebuild starts over.
    let fresh = HoldingsIndex::create_fresh(dir.path()).unwrap();
    assert_eq!(fresh.doc_count(), 0);
}

#[test]
fn create_fresh_refuses_a_directory_that_is_not_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "keep me").unwrap();
    let error = HoldingsIndex::create_fresh(dir.path()).err().unwrap();
    assert!(matches!(error, IndexError::NotAnIndex(_)), "{error}");
    assert!(notes.exists());
}

// ------------------------------------------------------------- sharing

#[test]
fn the_index_can_be_shared_between_request_handlers() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<HoldingsIndex>();
    shared::<SearchRequest>();
    shared::<SearchResults>();
}

// ------------------------------------------------------------- robustness

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn arbitrary_query_text_never_fails_the_index(text in "\\PC{0,40}|[a-z()\" *:+-]{0,30}") {
        thread_local! {
            static FIXTURE: Fixture = text_corpus();
        }
        FIXTURE.with(|f| {
            let request = SearchRequest { text: text.clone(), facets: true, highlight: true, ..Default::default() };
            match f.index.search(&request, &operator()) {
                Ok(results) => prop_assert_eq!(results.total as usize, results.hits.len()),
                Err(SearchError::Query { position: Some(at), .. }) => {
                    prop_assert!(at <= text.chars().count())
                }
                Err(other) => prop_assert!(false, "{:?}: {:?}", text, other),
            }
            Ok(())
        })?;
    }
}

// ------------------------------------------------------------ benchmark

/// Latency on a synthetic corpus; run with
/// `MERIDIAN_BENCH_N=1000000 cargo test -p meridian --lib -- --ignored --nocapture bench`.
#[test]
#[ignore]
fn bench_queries_on_a_large_corpus() {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use std::time::Instant;

    let n: usize = std::env::var("MERIDIAN_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let mut rng = StdRng::seed_from_u64(7);
    let vocabulary = 20_000usize;
    let word = |rng: &mut StdRng| {
        let u: f64 = rng.gen();
        format!("w{}", (vocabulary as f64 * u.powi(3)) as usize)
    };
    let words =
        |rng: &mut StdRng, k: usize| (0..k).map(|_| word(rng)).collect::<Vec<_>>().join(" ");
    // MERIDIAN_BENCH_DIR keeps the corpus between runs.
    let temporary = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("MERIDIAN_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| temporary.path().to_owned());
    let index = Arc::new(HoldingsIndex::open(&dir).unwrap());
    let n = if index.doc_count() > 0 { 0 } else { n };
    let started = Instant::now();
    let mut batch = Vec::new();
    let mut slowest_batch = std::time::Duration::ZERO;
    for i in 0..n {
        let visibility = match rng.gen_range(0..20) {
            0..=13 => Visibility::Public,
            14..=17 => Visibility::Federation,
            18 => Visibility::Groups,
            _ => Visibility::Private,
        };
        let year = rng.gen_range(1990..2025);
        let spatial = if rng.gen_bool(0.6) {
            let w = rng.gen_range(-180.0..170.0);
            let s = rng.gen_range(-90.0..80.0);
            vec![bbox(
                w,
                s,
                w + rng.gen_range(0.0..10.0),
                s + rng.gen_range(0.0..10.0),
            )]
        } else {
            Vec::new()
        };
        batch.push(IndexOp::Upsert(DatasetRecord {
            origin: format!("node-{}", rng.gen_range(0..50)),
            title: words(&mut rng, 8),
            description: words(&mut rng, 40),
            keywords: (0..5).map(|_| word(&mut rng)).collect(),
            creators: vec![Creator {
                name: format!("Name{}, First", rng.gen_range(0..5000)),
                ..Default::default()
            }],
            disciplines: vec![format!("d{}", rng.gen_range(0..20))],
            access: rng.gen_range(1..5),
            visibility: visibility as i32,
            groups: vec![format!("g{}", rng.gen_range(0..5))],
            license: format!("L{}", rng.gen_range(0..15)),
            formats: vec![format!("F{}", rng.gen_range(0..10))],
            publication_year: year,
            size_bytes: rng.gen_range(0..1u64 << 40),
            updated_at: format!(
                "{year}-0{}-1{}T00:00:00Z",
                rng.gen_range(1..10),
                rng.gen_range(0..10)
            ),
            temporal: if rng.gen_bool(0.5) {
                temporal(&format!("{}", year - 5), &format!("{year}"))
            } else {
                None
            },
            spatial,
            ..record(&format!("r{i}"))
        }));
        if batch.len() == 50_000 || i + 1 == n {
            let at = Instant::now();
            index
                .apply(
                    std::mem::take(&mut batch),
                    &BTreeMap::from([("x".to_owned(), i as u64)]),
                )
                .unwrap();
            slowest_batch = slowest_batch.max(at.elapsed());
        }
    }
    println!(
        "indexed {n} in {:?} (slowest 50k apply {slowest_batch:?}), {} segments",
        started.elapsed(),
        index.reader.searcher().segment_readers().len()
    );
    let peer = Viewer::peer_of("p", HERE, &["g1"]);
    let mut measure_as =
        |label: &str, viewer: &Viewer, make: &mut dyn FnMut(&mut StdRng) -> SearchRequest| {
            let mut times = Vec::new();
            let mut hits = 0;
            for _ in 0..300 {
                let request = make(&mut rng);
                let at = Instant::now();
                let results = index.search(&request, viewer).unwrap();
                times.push(at.elapsed());
                hits += results.total;
            }
            times.sort();
            println!(
                "{label:<32} p50 {:>9.3?} p99 {:>9.3?} max {:>9.3?} mean total {}",
                times[times.len() / 2],
                times[times.len() * 99 / 100],
                times[times.len() - 1],
                hits / 300
            );
        };
    measure_as(
        "1-3 terms, facets, filter, operator",
        &operator(),
        &mut |rng| SearchRequest {
            text: (0..rng.gen_range(1..4))
                .map(|_| word(rng))
                .collect::<Vec<_>>()
                .join(" "),
            facets: true,
            disciplines: vec![format!("d{}", rng.gen_range(0..20))],
            ..Default::default()
        },
    );
    let mut measure = |label: &str, make: &mut dyn FnMut(&mut StdRng) -> SearchRequest| {
        measure_as(label, &peer, make)
    };
    let terms = |rng: &mut StdRng| {
        let k = rng.gen_range(1..4);
        words(rng, k)
    };
    measure("1-3 terms, facets, filter", &mut |rng| SearchRequest {
        text: terms(rng),
        facets: true,
        disciplines: vec![format!("d{}", rng.gen_range(0..20))],
        ..Default::default()
    });
    measure("1-3 terms, filter, no facets", &mut |rng| SearchRequest {
        text: terms(rng),
        disciplines: vec![format!("d{}", rng.gen_range(0..20))],
        ..Default::default()
    });
    measure("1-3 terms, no filter, no facets", &mut |rng| {
        SearchRequest {
            text: terms(rng),
            ..Default::default()
        }
    });
    measure("1-3 rarer terms, facets, filter", &mut |rng| {
        SearchRequest {
            text: (0..rng.gen_range(1..4))
                .map(|_| format!("w{}", rng.gen_range(100..vocabulary)))
                .collect::<Vec<_>>()
                .join(" "),
            facets: true,
            disciplines: vec![format!("d{}", rng.gen_range(0..20))],
            ..Default::default()
        }
    });
    measure("1-3 terms, facets, highlight", &mut |rng| SearchRequest {
        text: terms(rng),
        facets: true,
        highlight: true,
        ..Default::default()
    });
    measure("match all, no facets", &mut |_| SearchRequest::default());
    measure("match all, facets", &mut |_| SearchRequest {
        facets: true,
        ..Default::default()
    });
    measure("match all, facets, sort size", &mut |_| SearchRequest {
        facets: true,
        sort: Sort::Size,
        ..Default::default()
    });
    measure("1 term, bbox 20deg, facets", &mut |rng| {
        let w = rng.gen_range(-180.0..160.0);
        let s = rng.gen_range(-90.0..70.0);
        SearchRequest {
            text: words(rng, 1),
            facets: true,
            bbox: Some(bbox(w, s, w + 20.0, s + 20.0)),
            ..Default::default()
        }
    });
    measure("1 term, time range, facets", &mut |rng| SearchRequest {
        text: words(rng, 1),
        facets: true,
        time_from: Some("2000".into()),
        time_to: Some("2005".into()),
        ..Default::default()
    });
    measure("prefix, facets", &mut |rng| SearchRequest {
        text: format!("w{}*", rng.gen_range(1..99)),
        facets: true,
        ..Default::default()
    });
}

// ---------------------------------------------------------------- dates

/// Texts that look like dates and texts that do not, including offsets that
/// carry a date out of the years 0000–9999.
fn date_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{4}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})",
        "(0000|9999)-(01-01|12-31)T(00:00|23:59):[0-9]{2}[+-][0-9]{2}:[0-9]{2}",
        "\\PC{0,30}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any date text goes through import (parse and validate), apply (the
    /// check a replicated record passes), indexing and the search filters
    /// as a value or as an error naming the field, never as a panic.
    #[test]
    fn any_date_text_is_accepted_or_refused_by_field_everywhere(
        start in date_text(),
        end in date_text(),
        filter in date_text(),
    ) {
        let mut line: serde_json::Value = serde_json::from_str(
            r#"{"id":"d","title":"T","creators":[{"name":"A"}],"publisher":"P",
                "publication_year":2020,"resource_type":"Dataset"}"#,
        ).unwrap();
        line["temporal"] = serde_json::json!({"start": start, "end": end});
        match crate::record::parse_json_line(&line.to_string()) {
            // What import accepts is canonical: it passes the replica's check.
            Ok(parsed) => prop_assert!(crate::record::validate(&parsed).is_ok()),
            Err(error) => prop_assert!(
                error.to_string().contains("temporal"),
                "error names the field: {error}"
            ),
        }
        // A peer may send any text: apply validates, the index must cope.
        let raw = DatasetRecord {
            temporal: Some(TemporalCoverage { start: start.clone(), end: end.clone() }),
            updated_at: filter.clone(),
            ..record("raw")
        };
        let _ = crate::record::validate(&raw);
        let _ = schema::Fields::new().document(&raw);
        let request = SearchRequest {
            time_from: Some(filter.clone()),
            time_to: Some(start),
            ..Default::default()
        };
        if let Err(error) = request.plan() {
            let text = error.to_string();
            prop_assert!(text.contains("time_") || text.contains("query"), "{text}");
        }
    }
}

/// Two threads only where the second one takes a real share of the work:
/// the work is cut into equal pieces, so the segments do not matter, only
/// how many postings the query reads over the whole index.
#[test]
fn a_search_spreads_only_where_a_second_thread_saves_work() {
    // One segment is cut as well.
    assert!(spread_pays(1_000_000, 1_000_000, Some(900_000)));
    assert!(spread_pays(1_000_000, 1_000_000, None));
    assert!(!spread_pays(1_000_000, 1_000_000, Some(40_000)));
    // 200,000 + 33,000 + 17,000 records: postings scaled to the index.
    assert!(spread_pays(250_000, 200_000, Some(60_000)));
    assert!(!spread_pays(250_000, 200_000, Some(30_000)));
    // Two halves: spread from 50,000 postings over the index on.
    assert!(spread_pays(1_000_000, 500_000, Some(30_000)));
    assert!(!spread_pays(1_000_000, 500_000, Some(20_000)));
    // No words: the whole index is read.
    assert!(spread_pays(1_000_000, 500_000, None));
    // A small index never spreads.
    assert!(!spread_pays(40_000, 20_000, None));
}

/// A search cut into pieces of segments answers as one that walks each
/// segment whole: the same hits in the same order with the same scores,
/// the same totals and facets, page after page, with every kind of filter
/// (each a scorer that must seek to a piece's start), and versions
/// replaced in earlier segments (deleted documents) left out of both.
#[test]
fn a_search_cut_into_pieces_answers_as_one_over_whole_segments() {
    const WORDS: [&str; 5] = ["glacier", "ice", "ocean", "snow", "melt"];
    let make = |n: usize, version: u64| DatasetRecord {
        title: format!(
            "{} {}",
            WORDS[(n + version as usize) % 5],
            WORDS[(n / 5) % 5]
        ),
        description: format!("{} core", WORDS[(n * 7) % 5]),
        size_bytes: (n % 13) as u64,
        updated_at: format!("2023-01-{:02}T00:00:00Z", 1 + n % 28),
        version,
        access: if n % 3 == 0 {
            Access::Restricted
        } else {
            Access::Open
        } as i32,
        disciplines: vec![["glaciology", "oceanography", "biology"][n % 3].into()],
        publication_year: 2000 + (n % 20) as u32,
        spatial: vec![bbox(
            (n % 36) as f64 * 10.0 - 180.0,
            -10.0,
            (n % 36) as f64 * 10.0 - 175.0,
            10.0,
        )],
        temporal: temporal(&format!("{}-01-01", 1990 + n % 30), "2020-12-31"),
        ..record(&format!("r{n:04}"))
    };
    // One segment of 700 and new versions of a third of its records:
    // whole segments cannot balance, so the large one is cut.
    let f = fixture((0..700).map(|n| make(n, 1)).collect());
    f.index.merge_segments().unwrap();
    f.add((0..700).step_by(3).map(|n| make(n, 2)).collect());
    let searcher = f.index.reader.searcher();
    let max_docs: Vec<u32> = searcher
        .segment_readers()
        .iter()
        .map(|s| s.max_doc())
        .collect();
    assert!(searcher
        .segment_readers()
        .iter()
        .any(|s| s.alive_bitset().is_some()));
    let pieces: usize = pieces::shares(&max_docs, SEARCH_THREADS)
        .iter()
        .map(Vec::len)
        .sum();
    assert!(pieces > max_docs.len());

    let pages = |request: &SearchRequest, work: Work| {
        let mut pages = Vec::new();
        let mut after = None;
        loop {
            let request = SearchRequest {
                after: after.take(),
                ..request.clone()
            };
            let mut prepared = f.index.prepare(&request, &operator()).unwrap();
            prepared.work = work;
            let mut page = prepared.run().unwrap();
            after = page.next_cursor.take();
            pages.push(page);
            if after.is_none() {
                return pages;
            }
        }
    };
    let filters = [
        SearchRequest::default(),
        SearchRequest {
            disciplines: vec!["oceanography".into()],
            access: vec![Access::Open],
            ..Default::default()
        },
        SearchRequest {
            year: Some((Some(2005), Some(2012))),
            ..Default::default()
        },
        in_box(-100.0, -5.0, 20.0, 5.0),
        during(Some("2012-06-01"), None),
    ];
    let texts = [
        "",
        "glacier",
        "glacier ice",
        "ice OR melt",
        "core -snow",
        "\"ocean glacier\"",
    ];
    for text in texts {
        for (n, filter) in filters.iter().enumerate() {
            for sort in [Sort::Relevance, Sort::Updated, Sort::Size] {
                let request = SearchRequest {
                    text: text.into(),
                    sort,
                    facets: true,
                    limit: 37,
                    ..filter.clone()
                };
                let whole = pages(&request, Work::Single);
                assert!(whole[0].total > 0, "{text} with filter {n}");
                let spread = pages(&request, Work::Spread);
                assert_eq!(spread, whole, "{text} with filter {n} by {sort:?}");
            }
        }
    }
}

/// A search runs where it was asked (`Work::Small`) only when it reads
/// few postings: a rare word, or a conjunction a rare word leads. A common
/// word, a union with one, a prefix (its term does not tell what it
/// expands to) or no words at all go to a search thread.
#[test]
fn only_searches_reading_few_postings_run_where_they_are_asked() {
    let records: Vec<DatasetRecord> = (0..INLINE_POSTINGS + 1000)
        .map(|n| DatasetRecord {
            title: format!("common {}", if n % 1000 == 7 { "rare" } else { "plain" }),
            ..record(&format!("r{n:05}"))
        })
        .collect();
    let rare = records.iter().filter(|r| r.title.ends_with("rare")).count();
    let f = fixture(records);
    for text in ["rare", "common rare", "rare -plain", "nowhere"] {
        assert_eq!(f.prepare(text).work(), Work::Small, "{text}");
    }
    for text in ["common", "rare OR common", "rar*", ""] {
        assert_eq!(f.prepare(text).work(), Work::Single, "{text}");
    }
    let small = f.prepare("common rare").run().unwrap();
    assert_eq!(small.total, rare as u64);
    assert_eq!(small.facets["access"], [("open".to_owned(), rare as u64)]);
    assert_eq!(small.hits.len(), rare);
}

/// A search gives up once its deadline passes, on one thread or spread,
/// so that a caller who left does not keep a search thread busy; one that
/// reads few postings is done before a look at the clock would matter.
#[test]
fn a_search_past_its_deadline_is_given_up() {
    let records: Vec<DatasetRecord> = (0..INLINE_POSTINGS + 1000)
        .map(|n| DatasetRecord {
            title: format!("common {}", if n % 1000 == 7 { "rare" } else { "plain" }),
            ..record(&format!("r{n:05}"))
        })
        .collect();
    let f = fixture(records);
    let passed = std::time::Instant::now();
    let ahead = passed + std::time::Duration::from_secs(600);
    for work in [Work::Single, Work::Spread] {
        let prepare = || {
            let mut prepared = f.prepare("common");
            prepared.work = work;
            prepared
        };
        let whole = prepare().run_until(Some(ahead)).unwrap();
        assert_eq!(whole.total, INLINE_POSTINGS + 1000, "{work:?}");
        assert!(
            matches!(
                prepare().run_until(Some(passed)),
                Err(SearchError::Deadline)
            ),
            "{work:?}"
        );
    }
    let small = f.prepare("common rare");
    assert_eq!(small.work(), Work::Small);
    assert_eq!(small.run_until(Some(passed)).unwrap().total, 21);
}

/// A conjunction of fielded words that no record but the last holds
/// together steps through one word's records inside one step; it ends
/// there once the deadline has passed, as a conjunction of unfielded
/// words does, and scores as tantivy's term query scores a word.
#[test]
fn a_conjunction_of_fielded_words_stops_at_the_deadline_inside_one_step() {
    let records: Vec<DatasetRecord> = (0..20_000)
        .map(|n| DatasetRecord {
            title: match n {
                19_999 => "alpha beta",
                n if n % 2 == 0 => "alpha",
                _ => "beta",
            }
            .into(),
            ..record(&format!("r{n:05}"))
        })
        .collect();
    let f = fixture(records);
    let searcher = f.index.reader.searcher();
    let prepared = f.prepare("title:alpha title:beta");
    let weight = prepared
        .query
        .weight(tantivy::query::EnableScoring::enabled_from_searcher(
            &searcher,
        ))
        .unwrap();
    // The segment that holds the one match, after thousands of records
    // holding one word or the other.
    let (reader, found) = searcher
        .segment_readers()
        .iter()
        .find_map(|reader| {
            let scorer = weight.scorer(reader, 1.0).unwrap();
            (scorer.doc() != tantivy::TERMINATED).then(|| (reader, scorer.doc()))
        })
        .expect("found without a deadline");
    assert!(found >= 8_000, "{found}");
    let past = interrupt::Deadline::new(std::time::Instant::now());
    {
        let _watch = interrupt::Watch::begin(Some(&past));
        let scorer = weight.scorer(reader, 1.0).unwrap();
        assert_eq!(scorer.doc(), tantivy::TERMINATED, "cut while it was built");
    }
    assert!(past.passed());

    // The word alone scores as a term query.
    let title = f.index.fields.title;
    let word = f.prepare("title:alpha");
    let term = tantivy::query::TermQuery::new(
        Term::from_field_text(title, "alpha"),
        tantivy::schema::IndexRecordOption::WithFreqs,
    );
    let scores = |query: &dyn tantivy::query::Query| {
        let weight = query
            .weight(tantivy::query::EnableScoring::enabled_from_searcher(
                &searcher,
            ))
            .unwrap();
        let mut scorer = weight.scorer(reader, 1.0).unwrap();
        let mut scores = Vec::new();
        while scorer.doc() != tantivy::TERMINATED {
            scores.push((scorer.doc(), scorer.score().to_bits()));
            scorer.advance();
        }
        scores
    };
    let want = scores(&term);
    assert!(want.len() > 1_000 && want.iter().any(|(doc, _)| *doc == found));
    assert_eq!(scores(&*word.query), want);
}

/// A query needing a word that no segment holds is answered from the
/// dictionaries, with no scorer built, and reads as any search that
/// matches nothing: no hits, no cursor, every facet empty. A word only a
/// small segment holds is still found.
#[test]
fn a_word_no_segment_holds_is_answered_from_the_dictionaries() {
    let titled = |numbers: std::ops::Range<u64>, word: &str| {
        numbers
            .map(|n| DatasetRecord {
                title: format!("common {word}"),
                ..record(&format!("r{n:05}"))
            })
            .collect::<Vec<_>>()
    };
    let f = fixture(titled(0..INLINE_POSTINGS + 1000, "plain"));
    f.add(titled(
        INLINE_POSTINGS + 1000..INLINE_POSTINGS + 1010,
        "late",
    ));
    assert!(f.index.reader.searcher().segment_readers().len() > 1);
    for text in [
        "nowhere",
        "common nowhere",
        "nowhere -plain",
        "title:nowhere",
        "title:\"common nowhere\"",
    ] {
        let prepared = f.prepare(text);
        assert!(prepared.query.is::<tantivy::query::EmptyQuery>(), "{text}");
        assert_eq!(prepared.work(), Work::Small, "{text}");
        let results = prepared.run().unwrap();
        assert_eq!((results.total, results.hits.len()), (0, 0), "{text}");
        assert!(results.next_cursor.is_none(), "{text}");
        assert_eq!(
            results
                .facets
                .keys()
                .map(String::as_str)
                .collect::<BTreeSet<_>>(),
            FACETS.iter().copied().collect::<BTreeSet<_>>(),
            "{text}"
        );
        assert!(results.facets.values().all(Vec::is_empty), "{text}");
    }
    for text in ["late", "common late", "late OR nowhere", "common"] {
        let prepared = f.prepare(text);
        assert!(!prepared.query.is::<tantivy::query::EmptyQuery>(), "{text}");
        let expected = if text == "common" {
            INLINE_POSTINGS + 1010
        } else {
            10
        };
        assert_eq!(prepared.run().unwrap().total, expected, "{text}");
    }
}

/// The held filter bitsets are those of every segment still read: a page
/// of an older snapshot keeps the current segments' bitsets, and a search
/// of the current index keeps the snapshot's.
#[test]
fn filter_bitsets_of_segments_still_read_are_kept() {
    let f = fixture((0..20).map(|n| glacier_record(n, "a")).collect());
    f.add((0..20).map(|n| glacier_record(n, "b")).collect());
    let segments = f.index.reader.searcher().segment_readers().len();
    assert!(segments >= 2);
    let request = SearchRequest {
        text: "glacier".into(),
        limit: 5,
        ..Default::default()
    };
    // Each segment read through the bitset of `anyone`.
    let first = f.search(request.clone(), &Viewer::Anonymous);
    assert!(first.next_cursor.is_some(), "the snapshot is held");
    assert_eq!(f.index.bits_cache.held().0, segments);
    // One merged segment now, and the snapshot's still held.
    f.index.merge_segments().unwrap();
    assert_eq!(f.index.reader.searcher().segment_readers().len(), 1);
    f.search(request.clone(), &Viewer::Anonymous);
    assert_eq!(f.index.bits_cache.held().0, segments + 1);
    let next = SearchRequest {
        after: first.next_cursor,
        ..request.clone()
    };
    assert_eq!(f.search(next, &Viewer::Anonymous).hits.len(), 5);
    assert_eq!(f.index.bits_cache.held().0, segments + 1);
    // Without the snapshot, only the merged segment's is kept.
    f.index.drop_snapshots();
    f.search(request, &Viewer::Anonymous);
    assert_eq!(f.index.bits_cache.held().0, 1);
}

/// The longest word a query takes is indexed, and finds its record: the
/// query's bound and the analyzer's agree.
#[test]
fn the_longest_word_a_query_takes_is_indexed() {
    let longest = "x".repeat(crate::query::expr::MAX_WORD_BYTES - 1);
    let f = fixture(vec![DatasetRecord {
        title: format!("checksum {longest}"),
        ..record("PDC-1")
    }]);
    assert_eq!(f.text(&longest), set(&["PDC-1"]));
}

/// A search holding phrases is costed by every posting of their words,
/// not by its rarest clause, and is not run inline even on a small index:
/// a phrase's scorer steps through all the documents holding its words
/// while it looks for them side by side.
#[test]
fn phrases_are_costed_by_every_posting_of_their_words() {
    let f = fixture(
        (0..5_000)
            .map(|n| DatasetRecord {
                title: format!("w{n} of and the"),
                ..record(&format!("r{n:05}"))
            })
            .collect(),
    );
    for (text, small) in [
        ("of and the", true),
        ("\"of and\"", true),
        ("\"the of\" \"and of\" \"the and\"", false),
        ("w17 \"the of\" \"and of\" \"the and\"", false),
        ("w17 the-of and-of the-and", false),
    ] {
        assert_eq!(f.prepare(text).work() == Work::Small, small, "{text}");
    }
}

/// `n` records whose titles, descriptions and keywords are runs of a few
/// common words, of varied lengths and counts, so that blocks of postings
/// differ in their best scores; every third one federation-only, every
/// fifth in another discipline.
fn common_words(n: usize) -> Vec<DatasetRecord> {
    const WORDS: [&str; 6] = ["ice", "sea", "melt", "snow", "rock", "river"];
    let mut random = 11u64;
    let mut next = move |m: u64| {
        random = random
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (random >> 33) % m
    };
    (0..n)
        .map(|i| {
            let mut text = |longest: u64, least: u64| {
                let len = least + next(longest - least + 1);
                (0..len)
                    .map(|_| WORDS[next(WORDS.len() as u64) as usize])
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let title = text(6, 1);
            let description = text(40, 0);
            let keywords = vec![text(1, 1)];
            DatasetRecord {
                title,
                description,
                keywords,
                disciplines: vec![if i % 5 == 0 { "ocean" } else { "earth" }.into()],
                visibility: if i % 3 == 0 {
                    Visibility::Federation
                } else {
                    Visibility::Public
                } as i32,
                ..record(&format!("r{i:05}"))
            }
        })
        .collect()
}

/// An index of `records` in three segments.
fn in_three_segments(records: Vec<DatasetRecord>) -> Fixture {
    let f = fixture(Vec::new());
    for part in records.chunks(records.len().div_ceil(3)) {
        f.add(part.to_vec());
    }
    f
}

impl Fixture {
    /// Has searches estimate their counts from 2,000 matches up, from a
    /// sample of windows of 16 documents meant to hold 2,048; or (`false`)
    /// count every match.
    fn estimate(&self, estimate: bool) {
        *self.index.estimates.write().unwrap() = if estimate {
            Estimates {
                exact_matches: 2_000,
                sample_matches: 2_048,
                sample_width: 16,
            }
        } else {
            Estimates {
                exact_matches: u64::MAX,
                ..Estimates::default()
            }
        };
    }

    /// `request` as `viewer`, estimating (`true`) or counting every match.
    fn search_estimating(
        &self,
        estimate: bool,
        request: &SearchRequest,
        viewer: &Viewer,
    ) -> SearchResults {
        self.estimate(estimate);
        self.search(request.clone(), viewer)
    }

    /// `request` as `viewer`, counting every match and estimating.
    fn exact_and_estimated(
        &self,
        request: &SearchRequest,
        viewer: &Viewer,
    ) -> (SearchResults, SearchResults) {
        (
            self.search_estimating(false, request, viewer),
            self.search_estimating(true, request, viewer),
        )
    }
}

#[test]
fn a_large_search_has_exact_hits_on_every_page_and_estimated_counts() {
    let f = in_three_segments(common_words(24_000));
    let stepped = prune::stepped();
    let windows = any_field::windows_skipped();
    let ocean = || vec!["ocean".to_owned()];
    let searches: Vec<(SearchRequest, Viewer)> = vec![
        (SearchRequest::default(), operator()),
        (SearchRequest::default(), Viewer::Anonymous),
        (
            SearchRequest {
                disciplines: ocean(),
                ..Default::default()
            },
            operator(),
        ),
    ];
    for text in [
        "ice",
        "sea ice",
        "melt snow -title:river",
        "rock sea river",
        "description:ice",
    ] {
        for (request, viewer) in &searches {
            let request = SearchRequest {
                text: text.into(),
                limit: 10,
                facets: true,
                ..request.clone()
            };
            let (mut after_exact, mut after_estimating) = (None, None);
            for page in 0..3 {
                let at = |after: &Option<String>| SearchRequest {
                    after: after.clone(),
                    ..request.clone()
                };
                let want = f.search_estimating(false, &at(&after_exact), viewer);
                let got = f.search_estimating(true, &at(&after_estimating), viewer);
                let hits = |r: &SearchResults| {
                    r.hits
                        .iter()
                        .map(|h| (h.id.clone(), h.score))
                        .collect::<Vec<_>>()
                };
                let context = format!("{text:?}, {viewer:?}, page {page}");
                assert_eq!(hits(&got), hits(&want), "{context}");
                assert_eq!(want.hits.len(), 10, "{context}");
                assert!(!want.estimated, "{context}");
                // Large enough to estimate, and close.
                assert!(want.total >= 2_000, "{context}: {}", want.total);
                assert!(got.estimated, "{context}");
                let off = (got.total as f64 - want.total as f64).abs() / want.total as f64;
                assert!(off < 0.15, "{context}: {} for {}", got.total, want.total);
                for (name, values) in &want.facets {
                    for (value, count) in values.iter().filter(|(_, c)| *c >= 1_000) {
                        let estimated = got.facets[name]
                            .iter()
                            .find(|(v, _)| v == value)
                            .map_or(0, |(_, c)| *c);
                        let off = (estimated as f64 - *count as f64).abs() / *count as f64;
                        assert!(
                            off < 0.25,
                            "{context}: {name}={value} {estimated} for {count}"
                        );
                    }
                }
                assert!(got.next_cursor.is_some() && want.next_cursor.is_some());
                after_exact = want.next_cursor;
                after_estimating = got.next_cursor;
            }
        }
    }
    assert!(prune::stepped() > stepped, "no run was stepped over");
    assert!(
        any_field::windows_skipped() > windows,
        "no window was stepped over by its ceilings"
    );

    // What the sample says matches fewer is counted exactly: the words
    // match thousands, and the filters leave a few.
    let few = SearchRequest {
        text: "ice".into(),
        disciplines: ocean(),
        year: Some((Some(2021), None)),
        limit: 10,
        ..Default::default()
    };
    let (want, got) = f.exact_and_estimated(&few, &operator());
    assert!(!got.estimated);
    assert_eq!(got.total, want.total);
    // Nor is one whose top hits need every match scored: a phrase.
    let phrase = SearchRequest {
        text: "\"sea ice\"".into(),
        limit: 10,
        ..Default::default()
    };
    let (want, got) = f.exact_and_estimated(&phrase, &operator());
    assert!(want.total >= 2_000, "{}", want.total);
    assert!(!got.estimated);
    assert_eq!(got.total, want.total);
    // Nor is a search in another order than relevance estimated.
    let by_size = SearchRequest {
        text: "ice".into(),
        sort: Sort::Size,
        limit: 10,
        ..Default::default()
    };
    let (want, got) = f.exact_and_estimated(&by_size, &operator());
    assert!(!got.estimated);
    assert_eq!(got.total, want.total);
}
