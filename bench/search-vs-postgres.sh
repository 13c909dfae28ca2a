#!/usr/bin/env bash
# Meridian's Catalog.Search against PostgreSQL full-text search, side by
# side, on the same generated records and the same queries.
#
#   bench/search-vs-postgres.sh [RECORDS] [QUERIES]     (defaults 1000000 1000)
#   CORPUS=debian bench/search-vs-postgres.sh [QUERIES]  (default 1000)
#
# CORPUS=debian searches a real catalogue instead: the Debian archive's
# package lists that apt keeps (/var/lib/apt/lists, or APT_LISTS), one
# PUBLIC record per package, and 1-3 adjacent words of real package titles
# as queries (top 10 + facets, no filter); both sides run the same queries
# on the same records. See docs/benchmarks.md for the mapping.
#
# 1. Builds the release binaries and runs `meridian-bench search --pg`: it
#    generates RECORDS records (Zipf-like words), imports them into a real
#    node, and times QUERIES searches (1-3 terms, facets, one filter) over
#    loopback gRPC with TLS as an anonymous client. It leaves the corpus
#    (corpus.jsonl), the queries (queries.jsonl) and its latencies behind.
# 2. Starts a private PostgreSQL cluster (installed with apt-get if missing)
#    on a Unix socket in the work directory, loads the same records (title,
#    keywords, creators, project and description in one weighted tsvector
#    with a GIN index; discipline, access, year and visibility as indexed
#    columns) and times the same queries doing the same work: the records
#    the anonymous caller may see (visibility = public), AND of the terms
#    (plainto_tsquery), the filter, the total, the top 20 by ts_rank and
#    counts of the six facets, in one statement per query.
# 3. Prints both and the ratio, stops both servers and removes the work
#    directory.
#
# SEARCH_BENCH_DIR=DIR keeps the work in DIR instead (and reuses the
# corpus, the node and the loaded PostgreSQL table on the next run with the
# same RECORDS). CARGO_TARGET_DIR is honoured.
set -euo pipefail

CORPUS=${CORPUS:-generated}
case $CORPUS in
generated)
    RECORDS=${1:-1000000}
    QUERIES=${2:-1000}
    CORPUS_ARGS=(--records "$RECORDS")
    ;;
debian)
    RECORDS=debian
    QUERIES=${1:-1000}
    CORPUS_ARGS=(--corpus debian --apt-lists "${APT_LISTS:-/var/lib/apt/lists}")
    ;;
*)
    echo "CORPUS=$CORPUS: expected generated or debian" >&2
    exit 2
    ;;
esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

if [[ -n ${SEARCH_BENCH_DIR:-} ]]; then
    WORK=$(mkdir -p "$SEARCH_BENCH_DIR" && cd "$SEARCH_BENCH_DIR" && pwd)
    KEEP=1
else
    WORK=$(mktemp -d /tmp/meridian-search-bench.XXXXXX)
    KEEP=0
fi
chmod 755 "$WORK"
PGDATA_DIR=$WORK/pg
PGSOCK=$WORK/pgsock
PGPORT=5432
PG_BIN=""
BENCH_PID=""

as_postgres() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

cleanup() {
    set +e
    if [[ -n $BENCH_PID ]] && kill -0 "$BENCH_PID" 2>/dev/null; then
        kill -TERM "$BENCH_PID"
        wait "$BENCH_PID"
    fi
    # A node left behind by an interrupted benchmark: only ours, found by
    # its data directory.
    for pid in $(pgrep -f "serve --data-dir $WORK/meridian/node" || true); do
        kill -TERM "$pid"
    done
    if [[ -n $PG_BIN && -f $PGDATA_DIR/postmaster.pid ]]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null
    fi
    if [[ $KEEP -eq 0 ]]; then
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

find_pg_bin() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        if [[ -x $dir/initdb && -x $dir/pg_ctl ]]; then
            PG_BIN=$dir
        fi
    done
}

find_pg_bin
if [[ -z $PG_BIN ]]; then
    echo "== installing PostgreSQL"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
    find_pg_bin
fi
[[ -n $PG_BIN ]] || { echo "PostgreSQL binaries not found" >&2; exit 1; }

if ! python3 -c 'import psycopg' 2>/dev/null; then
    echo "== installing psycopg in a virtual environment"
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install -q 'psycopg[binary]'
    PYTHON=$WORK/venv/bin/python
else
    PYTHON=python3
fi

echo "== building release binaries"
(cd "$ROOT" && cargo build --release -p meridian --bins)

echo "== Meridian"
"$TARGET/release/meridian-bench" search "${CORPUS_ARGS[@]}" --queries "$QUERIES" \
    --dir "$WORK/meridian" --pg &
BENCH_PID=$!
wait "$BENCH_PID"
BENCH_PID=""

echo "== PostgreSQL ($("$PG_BIN/postgres" --version))"
if [[ ! -f $PGDATA_DIR/PG_VERSION ]]; then
    rm -rf "$PGDATA_DIR" "$WORK/pg.records"
    mkdir -p "$PGDATA_DIR"
    chown "$(as_postgres id -u)" "$PGDATA_DIR" 2>/dev/null || true
    as_postgres "$PG_BIN/initdb" -D "$PGDATA_DIR" -A trust -U postgres -E UTF8 >/dev/null
fi
mkdir -p "$PGSOCK"
chown "$(as_postgres id -u)" "$PGSOCK" 2>/dev/null || true
# Unix socket only (no TCP port to collide with). Memory as a tuned server
# would have it for this table; JIT off, since compiling plans only adds
# latency to queries of this size.
as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -w -l "$PGDATA_DIR/server.log" \
    -o "-c listen_addresses='' -k $PGSOCK -p $PGPORT -c shared_buffers=1GB \
        -c work_mem=64MB -c maintenance_work_mem=1GB -c jit=off \
        -c effective_cache_size=8GB -c max_wal_size=8GB -c fsync=off \
        -c synchronous_commit=off -c full_page_writes=off" start >/dev/null

cat >"$WORK/pg_bench.py" <<'PY'
"""Loads the corpus into PostgreSQL and times the benchmark queries."""
import json, math, os, sys, time
import psycopg

work, corpus_name, pgsock, port = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
mdir = os.path.join(work, "meridian")
meridian = json.load(open(os.path.join(mdir, "meridian.json")))
records = meridian["records"]
# What the loaded table holds: the corpus and its size.
corpus_key = f"{meridian.get('corpus', 'generated')}:{records}"
conn = psycopg.connect(host=pgsock, port=port, user="postgres", dbname="postgres", autocommit=True)

stamp = os.path.join(work, "pg.records")
loaded = os.path.exists(stamp) and open(stamp).read() == corpus_key
if not loaded:
    started = time.perf_counter()
    conn.execute("DROP TABLE IF EXISTS records")
    conn.execute("""
        CREATE TABLE records (
            id text PRIMARY KEY,
            origin text NOT NULL,
            title text NOT NULL,
            description text NOT NULL,
            keywords text NOT NULL,
            creators text NOT NULL,
            project text NOT NULL,
            discipline text,
            access text NOT NULL,
            license text,
            format text,
            year int NOT NULL,
            visibility text NOT NULL,
            doi text,
            tsv tsvector GENERATED ALWAYS AS (
                setweight(to_tsvector('english', title), 'A') ||
                setweight(to_tsvector('english', keywords), 'B') ||
                setweight(to_tsvector('english', creators), 'B') ||
                setweight(to_tsvector('english', project), 'C') ||
                setweight(to_tsvector('english', description), 'D')
            ) STORED
        )""")
    columns = ("id, origin, title, description, keywords, creators, project, discipline, "
               "access, license, format, year, visibility, doi")
    with conn.cursor() as cur:
        with cur.copy(f"COPY records ({columns}) FROM STDIN") as copy:
            with open(os.path.join(mdir, "corpus.jsonl")) as corpus:
                for line in corpus:
                    r = json.loads(line)
                    copy.write_row((
                        r["id"], "bench", r["title"], r.get("description", ""),
                        # Keywords and names kept apart, as Meridian keeps
                        # each value apart.
                        " , ".join(r.get("keywords", [])),
                        " , ".join(c["name"] for c in r["creators"]),
                        r.get("project", ""),
                        (r.get("disciplines") or [None])[0],
                        r.get("access", "open"), r.get("license"),
                        (r.get("formats") or [None])[0],
                        r["publication_year"], r.get("visibility", "federation"), r.get("doi"),
                    ))
    loaded_at = time.perf_counter()
    conn.execute("CREATE INDEX records_tsv ON records USING gin (tsv)")
    for column in ("discipline", "access", "year", "visibility"):
        conn.execute(f"CREATE INDEX records_{column} ON records ({column})")
    conn.execute("VACUUM ANALYZE records")
    open(stamp, "w").write(corpus_key)
    print(f"loaded {records} records in {loaded_at - started:.1f}s, "
          f"indexed in {time.perf_counter() - loaded_at:.1f}s")
size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('records'))").fetchone()[0]
print(f"table with indexes: {size}")

SQL = """
WITH q AS (SELECT plainto_tsquery('english', %(text)s) AS q),
m AS MATERIALIZED (
    SELECT r.id, r.title, r.doi, r.year, r.origin, r.discipline, r.access, r.license,
           r.format, ts_rank(r.tsv, q.q) AS rank
    FROM records r, q
    WHERE r.tsv @@ q.q AND r.visibility = 'public' AND {filter}
),
top AS (SELECT id, title, doi, year, rank FROM m ORDER BY rank DESC, id LIMIT {limit}),
facets AS (
    SELECT discipline, origin, access, license, format, year, count(*) AS n FROM m
    GROUP BY GROUPING SETS ((discipline), (origin), (access), (license), (format), (year), ())
)
SELECT (SELECT count(*) FROM m),
       (SELECT json_agg(top) FROM top),
       (SELECT json_agg(facets) FROM facets)
"""

def statement(query):
    f = query["filter"]
    limit = int(query.get("limit", 20))
    if not f:
        return SQL.format(filter="TRUE", limit=limit), {}
    if "discipline" in f:
        return SQL.format(filter="r.discipline = %(value)s", limit=limit), {"value": f["discipline"]}
    if "access" in f:
        return SQL.format(filter="r.access = %(value)s", limit=limit), {"value": f["access"]}
    return (SQL.format(filter="r.year BETWEEN %(from)s AND %(to)s", limit=limit),
            {"from": f["year_from"], "to": f["year_to"]})

queries = [json.loads(line) for line in open(os.path.join(mdir, "queries.jsonl"))]
prepared = []
for query in queries:
    sql, params = statement(query)
    params["text"] = query["text"]
    prepared.append((sql, params))

def run(sql, params):
    with conn.cursor() as cur:
        cur.execute(sql, params, prepare=True)
        return cur.fetchone()[0]

for sql, params in prepared:  # warm-up: the same queries once
    run(sql, params)
latencies, totals = [], []
started = time.perf_counter()
for sql, params in prepared:
    at = time.perf_counter()
    totals.append(run(sql, params))
    latencies.append((time.perf_counter() - at) * 1e3)
elapsed = time.perf_counter() - started

def rank(values, p):
    s = sorted(values)
    return s[max(1, math.ceil(p * len(s))) - 1]

ml = meridian["latency_ms"]
agree = sum(1 for a, b in zip(meridian["totals"], totals) if a == b)
disagree = [(q["text"], a, b) for q, a, b in zip(queries, meridian["totals"], totals) if a != b]
no_match = sum(1 for t in totals if t == 0)
print(f"PostgreSQL: {len(latencies)} queries after {len(latencies)} warm-up, one at a time, "
      f"{len(latencies) / elapsed:.1f} QPS")
print()
shape = ("real package-title words, top 10, facets, no filter" if corpus_name == "debian"
         else "1-3 terms, facets, one filter")
print(f"{records} records ({corpus_name}), {len(queries)} queries ({shape}), "
      f"{os.cpu_count()} cores")
print(f"{'':12}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'max ms':>10}")
for name, values in (("Meridian", ml), ("PostgreSQL", latencies)):
    print(f"{name:12}" + "".join(f"{rank(values, p):10.2f}" for p in (0.5, 0.9, 0.99, 1.0)))
print(f"{'ratio':12}" + "".join(f"{rank(latencies, p) / rank(ml, p):9.1f}x"
                                for p in (0.5, 0.9, 0.99, 1.0)))
print(f"same total on {agree} of {len(totals)} queries"
      + ("" if agree == len(totals) else
         " (the two tokenizers and stemmers disagree on some words)"))
if disagree:
    near = sum(1 for _, a, b in disagree if abs(a - b) <= 0.1 * max(a, b))
    more = sum(1 for _, a, b in disagree if a > b)
    print(f"  of the {len(disagree)} others, {near} within 10%; Meridian finds more on {more}, "
          f"PostgreSQL on {len(disagree) - more}")
if no_match:
    examples = ", ".join(repr(q["text"]) for q, t in zip(queries, totals) if t == 0)
    print(f"PostgreSQL found nothing for {no_match} queries: {examples[:300]}")
for text, a, b in disagree[:10]:
    print(f"  {text!r}: Meridian {a}, PostgreSQL {b}")
PY

"$PYTHON" "$WORK/pg_bench.py" "$WORK" "$CORPUS" "$PGSOCK" "$PGPORT"
