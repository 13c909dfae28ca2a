//! Meridian's test kit, shared by the end-to-end tests, the benchmarks and
//! the demo: realistic generated holdings ([`generate`]) and a harness that
//! runs real `meridian` processes on port-0 listeners ([`harness`]); the
//! Debian package catalogue as a real-text corpus ([`debian`]).

pub mod debian;
pub mod fault;
pub mod generate;
pub mod harness;
