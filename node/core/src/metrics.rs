//! What a node counts as it works, for the operator's monitoring: the
//! counters and histograms that can only be kept as things happen (records
//! stored, pulls and their outcomes, rejections, search latency, limits
//! hit, connections). Each is updated at the one place the thing happens
//! (`holdings`, `sync`, and the edge's search, limiter and listeners).
//!
//! Everything that can be read from the node's state (lag, frozen and
//! quarantined origins, peers by state, store and index size) is not kept
//! here but computed when metrics are scraped, by the edge
//! (`meridian-server`'s `metrics` module), from the same state `status` and
//! `peers status` read.
//!
//! Labels are bounded by type: every label value is a variant of an enum
//! below, so no caller can make a series per client, query or origin.
//! Every series exists from the start (at 0), so rates and alerts see it
//! before its first event.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// One label: its name and a value from a fixed set.
type Label = [(&'static str, &'static str); 1];

/// Values of a label, each a fixed word.
pub trait LabelValue: Copy + 'static {
    /// The label's name.
    const NAME: &'static str;
    /// Every value, so each series exists from the start.
    const ALL: &'static [Self];
    /// The value as it appears in the exposition.
    fn as_str(self) -> &'static str;
}

macro_rules! label {
    ($(#[$doc:meta])* $name:ident, $label:literal, { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl LabelValue for $name {
            const NAME: &'static str = $label;
            const ALL: &'static [Self] = &[$($name::$variant),+];
            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }
    };
}

label!(
    /// What became of an imported line.
    ImportResult, "result", {
        /// Signed and stored as a new version.
        Stored => "stored",
        /// Equal to the stored version: nothing written.
        Unchanged => "unchanged",
        /// Invalid: reported to the importer by line.
        Rejected => "rejected",
    }
);

label!(
    /// How one pull of one origin from one holder ended (the words of
    /// `sync now`'s reports).
    PullOutcome, "outcome", {
        /// The holder sent what it advertised, all verified and applied.
        Ok => "ok",
        /// The holder stalled past the idle timeout.
        Timeout => "timeout",
        /// The holder could not be reached or the connection broke.
        Unreachable => "unreachable",
        /// Anything else: a refusal, a rejection, a fault of this node.
        Error => "error",
    }
);

label!(
    /// Why a pull was cut off because of what a peer sent
    /// (`SyncError::rejection`).
    RejectReason, "reason", {
        /// An envelope's signature failed.
        Signature => "signature",
        /// The checkpoint failed verification.
        Checkpoint => "checkpoint",
        /// Entries out of order, out of range or not matching their envelope.
        Sequence => "sequence",
        /// A batch not consistent with its checkpoint.
        Unproven => "unproven",
        /// A validly signed record that breaks the record rules.
        InvalidRecord => "invalid_record",
        /// Two signed checkpoints disagree: the origin froze.
        Equivocation => "equivocation",
        /// The peer answered as another node, or with another TLS key.
        WrongNode => "wrong_node",
        /// A message or pulled item over its bound.
        TooLarge => "too_large",
        /// An answer that breaks the protocol's rules (an origin listed
        /// twice in what the peer says it holds).
        Malformed => "malformed",
    }
);

label!(
    /// Why a record this node held whole was withdrawn (it neither serves
    /// nor searches it any more).
    WithdrawReason, "reason", {
        /// A later version arrived as digests only: narrowed, or a
        /// tombstone of a version this node may not see.
        Narrowed => "narrowed",
        /// The origin's new audience no longer lets this node see it.
        Audience => "audience",
        /// A revocation set aside the audience that had let it in.
        Revocation => "revocation",
    }
);

label!(
    /// The search scopes (DESIGN §8).
    SearchScope, "scope", {
        Local => "local",
        Federation => "federation",
        Live => "live",
    }
);

label!(
    /// The limits whose refusals are counted.
    Limit, "limit", {
        /// A public listener's cap on open connections.
        Connections => "connections",
        /// A public listener's cap on open connections from one address.
        ConnectionsPerAddress => "connections_per_address",
        /// A public listener's cap on TLS handshakes in progress.
        Handshakes => "handshakes",
        /// A public listener's cap on TLS handshakes in progress from one
        /// address.
        HandshakesPerAddress => "handshakes_per_address",
        /// A client's request rate.
        RequestRate => "request_rate",
        /// A client's requests in progress on the HTTP listener.
        RequestsAtOnce => "requests_at_once",
        /// Anonymous reads in progress.
        AnonymousReads => "anonymous_reads",
        /// Searches in progress for others than the operator.
        Searches => "searches",
        /// A search for others than the operator that ran out of
        /// `search.max_search_ms`.
        SearchTime => "search_time",
    }
);

label!(
    /// The node's public listeners.
    Listener, "listener", {
        /// Catalog and Federation (gRPC).
        Grpc => "grpc",
        /// The HTTP server.
        Http => "http",
    }
);

/// A family of counters, one per value of `L`.
#[derive(Debug, Clone)]
pub struct Counters<L> {
    family: Family<Label, Counter>,
    _label: std::marker::PhantomData<L>,
}

impl<L: LabelValue> Default for Counters<L> {
    fn default() -> Self {
        let family = Family::<Label, Counter>::default();
        for value in L::ALL {
            drop(family.get_or_create(&[(L::NAME, value.as_str())]));
        }
        Self {
            family,
            _label: std::marker::PhantomData,
        }
    }
}

impl<L: LabelValue> Counters<L> {
    /// Adds `n` to `value`'s counter.
    pub fn add(&self, value: L, n: u64) {
        self.family
            .get_or_create(&[(L::NAME, value.as_str())])
            .inc_by(n);
    }

    /// Adds one to `value`'s counter.
    pub fn inc(&self, value: L) {
        self.add(value, 1);
    }

    /// `value`'s count so far.
    pub fn get(&self, value: L) -> u64 {
        self.family
            .get_or_create(&[(L::NAME, value.as_str())])
            .get()
    }
}

/// A family of gauges, one per value of `L`.
#[derive(Debug, Clone)]
pub struct Gauges<L> {
    family: Family<Label, Gauge>,
    _label: std::marker::PhantomData<L>,
}

impl<L: LabelValue> Default for Gauges<L> {
    fn default() -> Self {
        let family = Family::<Label, Gauge>::default();
        for value in L::ALL {
            drop(family.get_or_create(&[(L::NAME, value.as_str())]));
        }
        Self {
            family,
            _label: std::marker::PhantomData,
        }
    }
}

impl<L: LabelValue> Gauges<L> {
    /// The gauge of `value`.
    pub fn of(&self, value: L) -> Gauge {
        self.family
            .get_or_create_owned(&[(L::NAME, value.as_str())])
    }
}

/// Buckets of the search latency histogram: 250 µs to about 8 s, doubling.
fn search_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// The counters and histograms of one node.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Own records by what became of their import line.
    pub imports: Counters<ImportResult>,
    /// Pulls of one origin from one holder, by outcome.
    pub pulls: Counters<PullOutcome>,
    /// Pulls cut off because of what the peer sent, by reason.
    pub rejections: Counters<RejectReason>,
    /// Entries of other origins verified and applied.
    pub entries_pulled: Counter,
    /// Records held whole and then withdrawn by a pull, by reason.
    pub withdrawn: Counters<WithdrawReason>,
    /// Searches answered, by scope, in seconds.
    search_seconds: Family<Label, Histogram, fn() -> Histogram>,
    /// Requests and connections refused by a limit.
    pub limit_hits: Counters<Limit>,
    /// Connections accepted (within the caps) per public listener.
    pub connections_accepted: Counters<Listener>,
    /// Connections open per public listener.
    pub connections_open: Gauges<Listener>,
    /// Origins held here whose current key set expired.
    pub keys_stale_origins: Gauge,
    /// Records held here whose current version a key revocation
    /// quarantines (per origin in `peers status`).
    pub keys_quarantined_records: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let search_seconds =
            Family::<Label, Histogram, fn() -> Histogram>::new_with_constructor(search_histogram);
        for scope in SearchScope::ALL {
            drop(search_seconds.get_or_create(&[(SearchScope::NAME, scope.as_str())]));
        }
        Self {
            imports: Counters::default(),
            pulls: Counters::default(),
            rejections: Counters::default(),
            entries_pulled: Counter::default(),
            withdrawn: Counters::default(),
            search_seconds,
            limit_hits: Counters::default(),
            connections_accepted: Counters::default(),
            connections_open: Gauges::default(),
            keys_stale_origins: Gauge::default(),
            keys_quarantined_records: Gauge::default(),
        }
    }
}

impl Metrics {
    /// Records one search of `scope` that took `seconds`.
    pub fn observe_search(&self, scope: SearchScope, seconds: f64) {
        self.search_seconds
            .get_or_create(&[(SearchScope::NAME, scope.as_str())])
            .observe(seconds);
    }

    /// Adds every metric to `registry` (whose prefix names the program).
    /// The registry shares the values: later updates show in later scrapes.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "import_records",
            "Own records by what became of their import line (stored: signed and stored as a new version)",
            self.imports.family.clone(),
        );
        registry.register(
            "sync_pulls",
            "Pulls of one origin's log from one holder, by outcome",
            self.pulls.family.clone(),
        );
        registry.register(
            "sync_rejections",
            "Pulls cut off because of what the peer sent, by reason; nothing of the open batch was kept",
            self.rejections.family.clone(),
        );
        registry.register(
            "sync_entries_pulled",
            "Log entries of other origins verified and applied",
            self.entries_pulled.clone(),
        );
        registry.register(
            "sync_withdrawn_records",
            "Records held whole that a pull withdrew (no longer served or searched here), by reason",
            self.withdrawn.family.clone(),
        );
        registry.register_with_unit(
            "search_duration",
            "Time to answer a search inside the node, by scope",
            prometheus_client::registry::Unit::Seconds,
            self.search_seconds.clone(),
        );
        registry.register(
            "limit_hits",
            "Requests and connections refused by a limit, by limit",
            self.limit_hits.family.clone(),
        );
        registry.register(
            "connections_accepted",
            "Connections accepted within the caps, by public listener",
            self.connections_accepted.family.clone(),
        );
        registry.register(
            "connections_open",
            "Connections open now (handshaking or established), by public listener",
            self.connections_open.family.clone(),
        );
        registry.register(
            "keys_stale_origins",
            "Origins held here (this node included) whose current key set expired: still searchable, flagged stale",
            self.keys_stale_origins.clone(),
        );
        registry.register(
            "keys_quarantined_records",
            "Records held here (own and replicated) whose current version was signed by a revoked key: not served, not searched until re-signed",
            self.keys_quarantined_records.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposition(metrics: &Metrics) -> String {
        let mut registry = Registry::with_prefix("meridian");
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn every_series_exists_at_zero_before_its_first_event() {
        let text = exposition(&Metrics::default());
        for line in [
            "meridian_import_records_total{result=\"stored\"} 0",
            "meridian_sync_pulls_total{outcome=\"timeout\"} 0",
            "meridian_sync_rejections_total{reason=\"equivocation\"} 0",
            "meridian_limit_hits_total{limit=\"request_rate\"} 0",
            "meridian_connections_open{listener=\"http\"} 0",
            "meridian_search_duration_seconds_count{scope=\"live\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn updates_show_under_their_label_only() {
        let metrics = Metrics::default();
        metrics.imports.add(ImportResult::Stored, 3);
        metrics.pulls.inc(PullOutcome::Ok);
        metrics.observe_search(SearchScope::Federation, 0.0003);
        let text = exposition(&metrics);
        assert!(text.contains("meridian_import_records_total{result=\"stored\"} 3\n"));
        assert!(text.contains("meridian_import_records_total{result=\"rejected\"} 0\n"));
        assert!(text.contains("meridian_sync_pulls_total{outcome=\"ok\"} 1\n"));
        assert!(text.contains(
            "meridian_search_duration_seconds_bucket{scope=\"federation\",le=\"0.0005\"} 1\n"
        ));
        assert!(text.contains(
            "meridian_search_duration_seconds_bucket{scope=\"federation\",le=\"0.00025\"} 0\n"
        ));
        assert!(text.contains("meridian_search_duration_seconds_count{scope=\"local\"} 0\n"));
    }
}
