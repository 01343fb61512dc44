//! The core's view of HTTP: a parsed request in, a response out. The Worker converts
//! `worker::Request`/`Response` to and from these; native tests build them directly.

use std::borrow::Cow;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other,
}

impl Method {
    pub fn parse(s: &str) -> Method {
        match s.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Path without the query, as received (not decoded).
    pub path: String,
    /// Raw query string without `?`.
    pub query: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Where the request came from, as Cloudflare's edge locates it (`request.cf`).
    pub location: Location,
}

/// A request's location from `request.cf`: each part only when present and well-formed (a
/// request that did not come through Cloudflare's edge has none).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Location {
    /// ISO 3166-1 alpha-2, upper case (`T1` for Tor); Cloudflare's `XX` (unknown) is `None`.
    pub country: Option<String>,
    pub asn: Option<u32>,
    /// Latitude and longitude in degrees.
    pub coordinates: Option<(f64, f64)>,
}

impl Location {
    /// From the `cf` fields as the runtime gives them (`latitude` and `longitude` are strings).
    pub fn from_cf(
        country: Option<&str>,
        asn: Option<f64>,
        latitude: Option<&str>,
        longitude: Option<&str>,
    ) -> Location {
        let country = country
            .map(str::trim)
            .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphanumeric()) && !c.eq_ignore_ascii_case("XX"))
            .map(str::to_ascii_uppercase);
        let asn = asn
            .filter(|a| a.fract() == 0.0 && (1.0..=u32::MAX as f64).contains(a))
            .map(|a| a as u32);
        let degrees = |v: Option<&str>, bound: f64| {
            v.and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|d| d.is_finite() && d.abs() <= bound)
        };
        let coordinates = degrees(latitude, 90.0).zip(degrees(longitude, 180.0));
        Location {
            country,
            asn,
            coordinates,
        }
    }
}

impl Request {
    pub fn new(method: Method, path_and_query: &str) -> Request {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p.to_owned(), q.to_owned()),
            None => (path_and_query.to_owned(), String::new()),
        };
        Request {
            method,
            path,
            query,
            headers: Vec::new(),
            body: Vec::new(),
            location: Location::default(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    pub fn with_location(mut self, location: Location) -> Request {
        self.location = location;
        self
    }

    pub fn with_form(mut self, pairs: &[(&str, &str)]) -> Request {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.body = body.into_bytes();
        self.with_header("content-type", "application/x-www-form-urlencoded")
    }

    pub fn with_json(mut self, value: &serde_json::Value) -> Request {
        self.body = value.to_string().into_bytes();
        self.with_header("content-type", "application/json")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// All values of a header (a repeated header is a protocol error in some places).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn query_params(&self) -> Params {
        Params::parse(self.query.as_bytes())
    }

    /// Form body parameters; empty unless the body is `application/x-www-form-urlencoded`.
    pub fn form_params(&self) -> Params {
        let is_form = self
            .header("content-type")
            .map(|ct| {
                ct.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
            .unwrap_or(false);
        if is_form {
            Params::parse(&self.body)
        } else {
            Params::default()
        }
    }

    /// Query for GET, form body for POST (authorize, userinfo, logout accept both).
    pub fn params(&self) -> Params {
        if self.method == Method::Post {
            self.form_params()
        } else {
            self.query_params()
        }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        for header in self.header_all("cookie") {
            for pair in header.split(';') {
                if let Some((k, v)) = pair.trim().split_once('=') {
                    if k == name {
                        return Some(v.to_owned());
                    }
                }
            }
        }
        None
    }

    /// The bearer token of an `Authorization: Bearer` header (RFC 6750 §2.1).
    pub fn bearer_token(&self) -> Option<&str> {
        bearer_of(self.header("authorization")?)
    }
}

/// The token of an `Authorization: Bearer` header value.
pub fn bearer_of(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Decoded `application/x-www-form-urlencoded` pairs, keeping repeats so they can be refused
/// (RFC 6749 §3.1: parameters must not be included more than once).
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn parse(bytes: &[u8]) -> Params {
        Params(
            form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The single value of `name`; `Err` when it is repeated. An empty value reads as absent.
    pub fn get(&self, name: &str) -> Result<Option<&str>, crate::error::OAuthError> {
        Ok(self.get_field(name)?.filter(|v| !v.is_empty()))
    }

    /// The single value of `name`, empty or not (a form field the user cleared); `Err` when it is
    /// repeated.
    pub fn get_field(&self, name: &str) -> Result<Option<&str>, crate::error::OAuthError> {
        let mut values = self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(crate::error::OAuthError::invalid_request(format!(
                "parameter {name} must not be repeated"
            )));
        }
        Ok(first)
    }

    pub fn require(&self, name: &str) -> Result<&str, crate::error::OAuthError> {
        self.get(name)?
            .ok_or_else(|| crate::error::OAuthError::invalid_request(format!("missing parameter {name}")))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Origins a form on this page may lead to (added to the page's CSP `form-action`).
    pub form_action: Vec<String>,
    /// Origins this page may frame (CSP `frame-src`); empty: none.
    pub frame_src: Vec<String>,
    /// The CSP nonce this page's scripts carry (`script-src 'nonce-…'`); `None`: no script runs.
    pub csp_nonce: Option<String>,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            form_action: Vec::new(),
            frame_src: Vec::new(),
            csp_nonce: None,
        }
    }

    pub fn json<T: Serialize>(status: u16, value: &T) -> Response {
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        let mut r = Response::new(status);
        r.body = body;
        r.set_header("content-type", "application/json");
        // RFC 6749 §5.1: token responses must not be cached; harmless elsewhere.
        r.set_header("cache-control", "no-store");
        r
    }

    pub fn html(status: u16, body: String) -> Response {
        let mut r = Response::new(status);
        r.body = body.into_bytes();
        r.set_header("content-type", "text/html; charset=utf-8");
        r.set_header("cache-control", "no-store");
        r
    }

    pub fn redirect(status: u16, location: &str) -> Response {
        let mut r = Response::new(status);
        // A URL stored or registered before it was checked may hold what a header cannot carry.
        let location = header_value(location, Unsafe::Url).unwrap_or_default();
        r.set_header("location", &location);
        r.set_header("cache-control", "no-store");
        r
    }

    pub fn error_page(status: u16, title: &str, detail: &str) -> Response {
        let body = crate::pages::error_page(title, detail);
        Response::html(status, body)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Replaces every value of `name`.
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(k, _)| k != name);
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    /// Adds a value (for `set-cookie`, which may repeat).
    pub fn add_header(&mut self, name: &str, value: &str) {
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    pub fn json_body(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Appends query parameters to a URL that may already have a query (RFC 6749 §3.1.2: the
/// redirection endpoint's query component must be retained).
pub fn append_query(url: &str, params: &[(&str, String)]) -> String {
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    // A redirect URI never carries a fragment (RFC 6749 §3.1.2); drop one defensively.
    let base = url.split('#').next().unwrap_or(url);
    let sep = if base.contains('?') {
        if base.ends_with('?') || base.ends_with('&') {
            ""
        } else {
            "&"
        }
    } else {
        "?"
    };
    format!("{base}{sep}{encoded}")
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The CSP source for where a URL points: `scheme://host[:port]`, or `scheme:` for a
/// private-use scheme.
pub fn csp_source(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once(':')?;
    match rest.strip_prefix("//") {
        Some(after) => {
            let authority = after.split(['/', '?', '#']).next().unwrap_or("");
            (!authority.is_empty() && !authority.contains(['@', ' ', ';', ',', '\'', '"']))
                .then(|| format!("{scheme}://{authority}"))
        }
        None => scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            .then(|| format!("{scheme}:")),
    }
}

/// What [`header_value`] does with a value that cannot go into a header as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsafe {
    /// Nothing: the answer is `None` and the caller refuses the value (configuration).
    Refuse,
    /// Percent-encode every byte outside visible ASCII (a URL for `Location`: a `%` there is
    /// already an escape, so it stays).
    Url,
    /// Percent-encode every byte outside visible ASCII and `%` itself, so the receiver decodes
    /// exactly the original text (`X-Gatehouse-Email` of an internationalised address).
    Text,
}

/// `value` as a header can carry it. Safe as it is: visible ASCII, spaces and tabs (RFC 9110
/// §5.5 without obs-text). Anything else has no agreed meaning in a header: the Fetch standard's
/// `Headers.append` throws on characters above U+00FF, workerd sends their raw UTF-8 bytes, and
/// receivers read bytes 0x80-0xFF as Latin-1 (`josé` arrives as `josÃ©`). Otherwise encoded as
/// `how` says, or `None` for [`Unsafe::Refuse`].
pub fn header_value(value: &str, how: Unsafe) -> Option<Cow<'_, str>> {
    let keeps = |b: u8| match how {
        Unsafe::Refuse => b.is_ascii_graphic() || b == b' ' || b == b'\t',
        Unsafe::Url => b.is_ascii_graphic(),
        Unsafe::Text => b.is_ascii_graphic() && b != b'%',
    };
    if value.bytes().all(keeps) {
        return Some(Cow::Borrowed(value));
    }
    if how == Unsafe::Refuse {
        return None;
    }
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if keeps(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Some(Cow::Owned(out))
}

/// The `host[:port]` of an origin or URL (`https://id.example.com/x` → `id.example.com`).
pub fn host_of(origin: &str) -> &str {
    let rest = origin.split_once("://").map(|(_, rest)| rest).unwrap_or(origin);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

#[cfg(test)]
mod location_tests {
    use super::Location;

    #[test]
    fn only_well_formed_cf_fields_become_a_location() {
        let l = Location::from_cf(Some("de"), Some(3320.0), Some("52.52000"), Some("13.40500"));
        assert_eq!(l.country.as_deref(), Some("DE"));
        assert_eq!(l.asn, Some(3320));
        assert_eq!(l.coordinates, Some((52.52, 13.405)));
        assert_eq!(Location::from_cf(Some("XX"), None, None, None), Location::default());
        assert_eq!(
            Location::from_cf(Some("T1"), None, None, None).country.as_deref(),
            Some("T1")
        );
        let bad = Location::from_cf(Some("DEU"), Some(-1.0), Some("91"), Some("0"));
        assert_eq!(bad, Location::default());
        assert_eq!(Location::from_cf(None, Some(1.5), None, None).asn, None);
        assert_eq!(Location::from_cf(None, Some(4294967296.0), None, None).asn, None);
        assert_eq!(
            Location::from_cf(None, None, Some("-90"), Some("180")).coordinates,
            Some((-90.0, 180.0))
        );
        assert_eq!(
            Location::from_cf(None, None, Some("10"), Some("-180.1")).coordinates,
            None
        );
        assert_eq!(Location::from_cf(None, None, Some("NaN"), Some("1")).coordinates, None);
        assert_eq!(Location::from_cf(None, None, Some("10"), None).coordinates, None);
    }
}
