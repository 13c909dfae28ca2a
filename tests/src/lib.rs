//! End-to-end tests live in `tests/`; their harness is `meridian-testkit`.
