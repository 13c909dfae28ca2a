//! An OAI-PMH request checked against the protocol: the verb, its
//! arguments (none repeated, none unknown, the required ones present, the
//! exclusive one alone), dates, sets and identifiers. Every refusal names
//! the argument and says what is wrong, as the error code the protocol
//! assigns it (section 3.6 of OAI-PMH 2.0).

use meridian_core::oai::Set;
use meridian_core::record::MAX_NAME_CHARS;
use time::macros::format_description;

/// Longest argument value accepted, in bytes (sets and tokens have their
/// own bounds).
pub const MAX_VALUE_BYTES: usize = 4096;
/// Longest `set` accepted, in bytes: the setSpec of the longest project a
/// record may name, every byte of it escaped (`~XX`) and every character
/// four bytes long. Disciplines and origins are shorter.
pub const MAX_SET_BYTES: usize = "project:".len() + 3 * 4 * MAX_NAME_CHARS;
/// Longest resumption token accepted, in characters, checked before any
/// decoding: a token carries the set of its list, fixed fields (under 512
/// bytes) and its MAC, in base64.
pub const MAX_TOKEN_LEN: usize = (MAX_SET_BYTES + 512).div_ceil(3) * 4;
/// Most arguments one request may carry.
pub const MAX_ARGUMENTS: usize = 16;

/// The six verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Identify,
    ListMetadataFormats,
    ListSets,
    GetRecord,
    ListIdentifiers,
    ListRecords,
}

impl Verb {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "Identify" => Verb::Identify,
            "ListMetadataFormats" => Verb::ListMetadataFormats,
            "ListSets" => Verb::ListSets,
            "GetRecord" => Verb::GetRecord,
            "ListIdentifiers" => Verb::ListIdentifiers,
            "ListRecords" => Verb::ListRecords,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Verb::Identify => "Identify",
            Verb::ListMetadataFormats => "ListMetadataFormats",
            Verb::ListSets => "ListSets",
            Verb::GetRecord => "GetRecord",
            Verb::ListIdentifiers => "ListIdentifiers",
            Verb::ListRecords => "ListRecords",
        }
    }

    /// The arguments the verb takes besides `verb`.
    fn arguments(self) -> &'static [&'static str] {
        match self {
            Verb::Identify => &[],
            Verb::ListMetadataFormats => &["identifier"],
            Verb::ListSets => &["resumptionToken"],
            Verb::GetRecord => &["identifier", "metadataPrefix"],
            Verb::ListIdentifiers | Verb::ListRecords => {
                &["metadataPrefix", "from", "until", "set", "resumptionToken"]
            }
        }
    }
}

/// The metadata formats this repository disseminates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    OaiDc,
    OaiDatacite,
}

impl Prefix {
    pub const ALL: [Prefix; 2] = [Prefix::OaiDc, Prefix::OaiDatacite];

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "oai_dc" => Some(Prefix::OaiDc),
            "oai_datacite" => Some(Prefix::OaiDatacite),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Prefix::OaiDc => "oai_dc",
            Prefix::OaiDatacite => "oai_datacite",
        }
    }
}

/// An OAI-PMH error condition and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OaiError {
    BadVerb(String),
    BadArgument(String),
    BadResumptionToken(String),
    CannotDisseminateFormat(String),
    IdDoesNotExist(String),
    NoRecordsMatch(String),
    NoMetadataFormats(String),
    NoSetHierarchy(String),
}

impl OaiError {
    /// The `code` attribute.
    pub fn code(&self) -> &'static str {
        match self {
            OaiError::BadVerb(_) => "badVerb",
            OaiError::BadArgument(_) => "badArgument",
            OaiError::BadResumptionToken(_) => "badResumptionToken",
            OaiError::CannotDisseminateFormat(_) => "cannotDisseminateFormat",
            OaiError::IdDoesNotExist(_) => "idDoesNotExist",
            OaiError::NoRecordsMatch(_) => "noRecordsMatch",
            OaiError::NoMetadataFormats(_) => "noMetadataFormats",
            OaiError::NoSetHierarchy(_) => "noSetHierarchy",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            OaiError::BadVerb(m)
            | OaiError::BadArgument(m)
            | OaiError::BadResumptionToken(m)
            | OaiError::CannotDisseminateFormat(m)
            | OaiError::IdDoesNotExist(m)
            | OaiError::NoRecordsMatch(m)
            | OaiError::NoMetadataFormats(m)
            | OaiError::NoSetHierarchy(m) => m,
        }
    }

    /// Whether the response may echo the request's arguments: not after
    /// badVerb or badArgument (section 3.2 of the protocol).
    pub fn echoes_arguments(&self) -> bool {
        !matches!(self, OaiError::BadVerb(_) | OaiError::BadArgument(_))
    }
}

/// The selective-harvesting arguments of ListRecords and ListIdentifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListArgs {
    pub prefix: Prefix,
    pub set: Option<Set>,
    /// Unix seconds, inclusive.
    pub from: Option<u64>,
    /// Unix seconds, inclusive (a day's last second at day granularity).
    pub until: Option<u64>,
    /// Whether from/until were given as days.
    pub day_granularity: bool,
}

/// What a request asks for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Identify,
    ListMetadataFormats { identifier: Option<String> },
    ListSets { resumption_token: Option<String> },
    GetRecord { identifier: String, prefix: Prefix },
    List { records: bool, args: ListArgs },
    Resume { records: bool, token: String },
}

/// A checked request, and the arguments to echo in the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub verb: Verb,
    pub request: Request,
    pub echo: Vec<(String, String)>,
}

/// A refused request: its verb when that was valid, the arguments to echo,
/// and the error.
pub type Refusal = (Option<Verb>, Vec<(String, String)>, OaiError);

/// Checks the arguments of one request (query string or form body, in
/// order).
pub fn check(pairs: Vec<(String, String)>) -> Result<Checked, Refusal> {
    let echo_none = Vec::new();
    if pairs.len() > MAX_ARGUMENTS {
        return Err((
            None,
            echo_none,
            OaiError::BadArgument(format!(
                "{} arguments; a request has at most {MAX_ARGUMENTS}",
                pairs.len()
            )),
        ));
    }
    let verbs: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "verb")
        .map(|(_, v)| v.as_str())
        .collect();
    let verb = match verbs.as_slice() {
        [] => return Err((None, echo_none, OaiError::BadVerb("the verb argument is missing".into()))),
        [one] => Verb::parse(one).ok_or_else(|| {
            (
                None,
                Vec::new(),
                OaiError::BadVerb(format!(
                    "`{}` is not a verb; the verbs are Identify, ListMetadataFormats, ListSets, GetRecord, ListIdentifiers and ListRecords",
                    truncate(one)
                )),
            )
        })?,
        _ => {
            return Err((
                None,
                echo_none,
                OaiError::BadVerb("the verb argument is repeated".into()),
            ))
        }
    };
    let bad = |message: String| (Some(verb), Vec::new(), OaiError::BadArgument(message));
    let mut args: Vec<(String, String)> = Vec::new();
    for (key, value) in pairs {
        if key == "verb" {
            continue;
        }
        if !verb.arguments().contains(&key.as_str()) {
            return Err(bad(format!(
                "`{}` is not an argument of {}",
                truncate(&key),
                verb.name()
            )));
        }
        if args.iter().any(|(k, _)| *k == key) {
            return Err(bad(format!("the argument {key} is repeated")));
        }
        let limit = match key.as_str() {
            "resumptionToken" => MAX_TOKEN_LEN,
            "set" => MAX_SET_BYTES,
            _ => MAX_VALUE_BYTES,
        };
        if value.len() > limit {
            return Err(bad(format!(
                "the argument {key} is {} bytes long; at most {limit} are accepted",
                value.len()
            )));
        }
        args.push((key, value));
    }
    let get = |name: &str| args.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let request = match verb {
        Verb::Identify => Request::Identify,
        Verb::ListMetadataFormats => Request::ListMetadataFormats {
            identifier: get("identifier"),
        },
        Verb::ListSets => Request::ListSets {
            resumption_token: get("resumptionToken"),
        },
        Verb::GetRecord => {
            let identifier = get("identifier")
                .ok_or_else(|| bad("GetRecord needs the argument identifier".into()))?;
            let prefix = get("metadataPrefix")
                .ok_or_else(|| bad("GetRecord needs the argument metadataPrefix".into()))?;
            let prefix = prefix_of(&prefix).map_err(|e| (Some(verb), args.clone(), e))?;
            Request::GetRecord { identifier, prefix }
        }
        Verb::ListIdentifiers | Verb::ListRecords => {
            let records = verb == Verb::ListRecords;
            if let Some(token) = get("resumptionToken") {
                if args.len() > 1 {
                    return Err(bad(
                        "resumptionToken is an exclusive argument: give it alone with the verb"
                            .into(),
                    ));
                }
                Request::Resume { records, token }
            } else {
                let prefix = get("metadataPrefix").ok_or_else(|| {
                    bad(format!("{} needs the argument metadataPrefix", verb.name()))
                })?;
                let from = get("from")
                    .map(|v| parse_date("from", &v, false))
                    .transpose()
                    .map_err(bad)?;
                let until = get("until")
                    .map(|v| parse_date("until", &v, true))
                    .transpose()
                    .map_err(bad)?;
                if let (Some((_, from_day)), Some((_, until_day))) = (from, until) {
                    if from_day != until_day {
                        return Err(bad(
                            "from and until must have the same granularity (both days or both seconds)".into(),
                        ));
                    }
                }
                if let (Some((from, _)), Some((until, _))) = (from, until) {
                    if from > until {
                        return Err(bad("from is later than until".into()));
                    }
                }
                let set = get("set").map(|s| parse_set(&s).map_err(bad)).transpose()?;
                let prefix = prefix_of(&prefix).map_err(|e| (Some(verb), args.clone(), e))?;
                Request::List {
                    records,
                    args: ListArgs {
                        prefix,
                        set,
                        // Legal dates before any datestamp (1970 and
                        // earlier): `from` selects everything, `until`
                        // nothing (every record was stored after 0).
                        from: from.map(|(t, _)| t.max(0) as u64),
                        until: until.map(|(t, _)| t.max(0) as u64),
                        day_granularity: from.or(until).is_some_and(|(_, day)| day),
                    },
                }
            }
        }
    };
    Ok(Checked {
        verb,
        request,
        echo: args,
    })
}

fn prefix_of(text: &str) -> Result<Prefix, OaiError> {
    Prefix::parse(text).ok_or_else(|| {
        OaiError::CannotDisseminateFormat(format!(
            "metadataPrefix `{}` is not disseminated here; use oai_dc or oai_datacite",
            truncate(text)
        ))
    })
}

/// A long value cut for a message.
fn truncate(text: &str) -> String {
    let mut out: String = text.chars().take(64).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// A `from` or `until` value: `YYYY-MM-DD` or `YYYY-MM-DDThh:mm:ssZ`, as
/// Unix seconds (a day's last second for `until` given as a day; before
/// 1970, negative), and whether it was a day.
pub fn parse_date(name: &str, text: &str, end_of_day: bool) -> Result<(i64, bool), String> {
    let bad = || {
        format!(
            "{name} `{}` is not a date: write YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ (UTC)",
            truncate(text)
        )
    };
    let ok_shape = |s: &str, digits: &[usize]| {
        s.bytes().enumerate().all(|(i, b)| {
            if digits.contains(&i) {
                b.is_ascii_digit()
            } else {
                true
            }
        })
    };
    let at = match text.len() {
        10 if ok_shape(text, &[0, 1, 2, 3, 5, 6, 8, 9]) => {
            let date = time::Date::parse(text, format_description!("[year]-[month]-[day]"))
                .map_err(|_| bad())?;
            let time = if end_of_day {
                time::Time::from_hms(23, 59, 59).map_err(|_| bad())?
            } else {
                time::Time::MIDNIGHT
            };
            (date.with_time(time).assume_utc(), true)
        }
        20 if ok_shape(text, &[0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]) => {
            let at = time::PrimitiveDateTime::parse(
                text,
                format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z"),
            )
            .map_err(|_| bad())?;
            (at.assume_utc(), false)
        }
        _ => return Err(bad()),
    };
    Ok((at.0.unix_timestamp(), at.1))
}

/// `YYYY-MM-DDThh:mm:ssZ` of Unix seconds.
pub fn datestamp(seconds: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds as i64)
        .ok()
        .and_then(|t| {
            t.format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// Characters a setSpec part may hold as they are; any other byte is
/// written `~XX` (its hex value), `~` itself included.
fn spec_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!*'()".contains(&b)
}

fn escape_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if spec_char(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("~{b:02X}"));
        }
    }
    out
}

/// The byte two hex digits spell; `None` for anything else (a sign, which
/// `from_str_radix` would take, included).
fn hex_byte(pair: &[u8]) -> Option<u8> {
    if pair.len() != 2 || !pair.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()
}

fn unescape_part(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'~' => {
                let hex = bytes.get(i + 1..i + 3)?;
                if hex.iter().any(|b| b.is_ascii_lowercase()) {
                    return None;
                }
                let byte = hex_byte(hex)?;
                if spec_char(byte) {
                    // One spelling per set: a plain character is never escaped.
                    return None;
                }
                out.push(byte);
                i += 3;
            }
            b if spec_char(b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok().filter(|s| !s.is_empty())
}

/// The setSpec of a set: `discipline:…`, `origin:…` or `project:…`, the
/// value escaped to the characters a setSpec allows.
pub fn set_spec(set: &Set) -> String {
    match set {
        Set::Discipline(d) => format!("discipline:{}", escape_part(d)),
        Set::Origin(o) => format!("origin:{}", escape_part(o)),
        Set::Project(p) => format!("project:{}", escape_part(p)),
    }
}

/// The set a setSpec names.
pub fn parse_set(spec: &str) -> Result<Set, String> {
    let bad = |why: &str| format!("set `{}` {why}", truncate(spec));
    let (kind, value) = spec.split_once(':').ok_or_else(|| {
        bad("is not a set of this repository: sets are discipline:…, origin:… and project:…")
    })?;
    let value = unescape_part(value).ok_or_else(|| {
        bad("is malformed: after the colon, letters, digits and -_.!*'() stand for themselves and ~XX (upper-case hex) for any other byte")
    })?;
    match kind {
        "discipline" => Ok(Set::Discipline(value)),
        "origin" => Ok(Set::Origin(value)),
        "project" => Ok(Set::Project(value)),
        _ => Err(bad(
            "is not a set of this repository: sets are discipline:…, origin:… and project:…",
        )),
    }
}

/// The human name of a set.
pub fn set_name(set: &Set) -> String {
    match set {
        Set::Discipline(d) => format!("Discipline: {d}"),
        Set::Origin(o) => format!("Records of node {o}"),
        Set::Project(p) => format!("Project: {p}"),
    }
}

/// Characters of a record id written as they are in an OAI identifier;
/// others are percent-encoded.
fn id_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b)
}

/// The OAI identifier of record `id` of `origin` at repository `node`:
/// `oai:NODE:ORIGIN/ID`, the id percent-encoded where a URI needs it.
pub fn identifier(node: &str, origin: &str, id: &str) -> String {
    let mut out = format!("oai:{node}:{origin}/");
    for b in id.bytes() {
        if id_char(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The origin and id an OAI identifier of repository `node` names.
pub fn parse_identifier(node: &str, identifier: &str) -> Option<(String, String)> {
    let rest = identifier
        .strip_prefix("oai:")?
        .strip_prefix(node)?
        .strip_prefix(':')?;
    let (origin, id) = rest.split_once('/')?;
    let bytes = id.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(hex_byte(bytes.get(i + 1..i + 3)?)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let id = String::from_utf8(out).ok()?;
    (!origin.is_empty() && !id.is_empty()).then(|| (origin.to_owned(), id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn code(list: &[(&str, &str)]) -> &'static str {
        check(pairs(list)).unwrap_err().2.code()
    }

    #[test]
    fn verbs_and_arguments_are_checked() {
        assert_eq!(code(&[]), "badVerb");
        assert_eq!(code(&[("verb", "Explode")]), "badVerb");
        assert_eq!(
            code(&[("verb", "Identify"), ("verb", "Identify")]),
            "badVerb"
        );
        assert_eq!(code(&[("verb", "Identify"), ("set", "x")]), "badArgument");
        assert_eq!(
            code(&[
                ("verb", "ListRecords"),
                ("metadataPrefix", "oai_dc"),
                ("from", "2020-01-01"),
                ("from", "2020-01-02")
            ]),
            "badArgument"
        );
        assert_eq!(code(&[("verb", "ListRecords")]), "badArgument");
        let many: Vec<(&str, &str)> = std::iter::once(("verb", "Identify"))
            .chain(std::iter::repeat_n(("x", "y"), MAX_ARGUMENTS))
            .collect();
        assert_eq!(code(&many), "badArgument");
        assert_eq!(
            code(&[("verb", "GetRecord"), ("metadataPrefix", "oai_dc")]),
            "badArgument"
        );
        assert_eq!(
            code(&[
                ("verb", "ListRecords"),
                ("resumptionToken", "x"),
                ("metadataPrefix", "oai_dc")
            ]),
            "badArgument"
        );
        assert_eq!(
            code(&[("verb", "ListRecords"), ("metadataPrefix", "marc21")]),
            "cannotDisseminateFormat"
        );
        assert_eq!(
            code(&[
                ("verb", "ListRecords"),
                ("metadataPrefix", "oai_dc"),
                ("from", "2020-01-01"),
                ("until", "2020-01-01T00:00:00Z")
            ]),
            "badArgument"
        );
        assert_eq!(
            code(&[
                ("verb", "ListRecords"),
                ("metadataPrefix", "oai_dc"),
                ("from", "2021-01-01"),
                ("until", "2020-01-01")
            ]),
            "badArgument"
        );
        assert_eq!(
            code(&[
                ("verb", "ListRecords"),
                ("metadataPrefix", "oai_dc"),
                ("set", "colour:red")
            ]),
            "badArgument"
        );
        let ok = check(pairs(&[
            ("verb", "ListIdentifiers"),
            ("metadataPrefix", "oai_datacite"),
            ("from", "2020-01-01"),
            ("until", "2020-01-02"),
            ("set", "project:Arctic~20sea~20ice"),
        ]))
        .unwrap();
        assert_eq!(
            ok.request,
            Request::List {
                records: false,
                args: ListArgs {
                    prefix: Prefix::OaiDatacite,
                    set: Some(Set::Project("Arctic sea ice".into())),
                    from: Some(1_577_836_800),
                    until: Some(1_577_836_800 + 2 * 86_400 - 1),
                    day_granularity: true,
                }
            }
        );
        // Dates before 1970 are legal: from them, everything; until them,
        // nothing (no record was stored at second 0 or before).
        let early = |name: &str, value: &str| {
            let checked = check(pairs(&[
                ("verb", "ListRecords"),
                ("metadataPrefix", "oai_dc"),
                (name, value),
            ]))
            .unwrap();
            match checked.request {
                Request::List { args, .. } => (args.from, args.until),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(early("from", "1900-01-01"), (Some(0), None));
        assert_eq!(early("until", "1969-12-31T23:59:59Z"), (None, Some(0)));
    }

    #[test]
    fn dates_take_both_granularities_and_nothing_else() {
        assert_eq!(
            parse_date("from", "1970-01-02", false).unwrap(),
            (86_400, true)
        );
        assert_eq!(
            parse_date("from", "2024-02-29T12:00:01Z", false).unwrap().0,
            1_709_208_001
        );
        for bad in [
            "2024-02-30",
            "2024-1-01",
            "2024-01-01T12:00:00",
            "2024-01-01T12:00:00+01:00",
            "2024-01-01 12:00:00Z",
            "+024-01-01",
            "yesterday",
            "",
        ] {
            assert!(parse_date("from", bad, false).is_err(), "{bad}");
        }
        assert_eq!(parse_date("until", "1969-12-31", true).unwrap(), (-1, true));
        assert_eq!(
            parse_date("from", "1900-01-01", false).unwrap().0,
            -2_208_988_800
        );
        assert_eq!(datestamp(1_709_208_001), "2024-02-29T12:00:01Z");
    }

    #[test]
    fn set_specs_round_trip_and_match_the_schema_pattern() {
        for set in [
            Set::Discipline("earth".into()),
            Set::Origin("polar-dc.example".into()),
            Set::Project("Arctic sea ice ~ 50% (phase 2) / Ü".into()),
        ] {
            let spec = set_spec(&set);
            assert!(
                spec.split(':')
                    .skip(1)
                    .all(|p| !p.is_empty() && p.bytes().all(|b| spec_char(b) || b == b'~')),
                "{spec}"
            );
            assert_eq!(parse_set(&spec).unwrap(), set, "{spec}");
        }
        for bad in [
            "earth",
            "discipline:",
            "discipline:a b",
            "discipline:~2",
            "discipline:~61",
            "discipline:~7e",
            // A sign is not a hex digit: one spelling per set.
            "discipline:~+4",
            "discipline:~-4",
        ] {
            assert!(parse_set(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identifiers_round_trip() {
        for id in ["PDC-2021-0412", "10.1234/abc", "a%b", "ä<ö>\"{}"] {
            let oai = identifier("polar", "uni", id);
            assert!(oai.bytes().all(|b| b.is_ascii_graphic()), "{oai}");
            assert_eq!(
                parse_identifier("polar", &oai),
                Some(("uni".into(), id.into()))
            );
        }
        assert_eq!(parse_identifier("polar", "oai:other:uni/x"), None);
        assert_eq!(parse_identifier("polar", "oai:polar:uni"), None);
        assert_eq!(parse_identifier("polar", "oai:polar:uni/%zz"), None);
        assert_eq!(parse_identifier("polar", "oai:polar:uni/%+4"), None);
        assert_eq!(parse_identifier("polar", "oai:polar:uni/%4"), None);
    }
}
