//! The GeoIP policy (../shared/reference/001, "GeoIP policy"): country and ASN allow and deny
//! lists, and travel checks against the user's last sign-ins. The location is what Cloudflare's
//! edge puts in `request.cf` (country, ASN, latitude, longitude; `http::Location`), so no
//! database ships with Gatehouse; successful sign-ins record it in their event, which is the
//! history the travel checks read.
//!
//! Travel, as the reference describes it:
//! - **maximum distance**: the sign-in fails when its distance to any of the last N sign-ins
//!   (`GATEHOUSE_GEOIP_HISTORY`, default 5) exceeds the maximum plus its tolerance;
//! - **impossible travel**: it fails when reaching it from any of those sign-ins would have
//!   needed more than 1,000 km per hour of time between them, plus the tolerance (in km).
//!
//! A request without the data a configured check needs (no `cf` object, country `XX`, no
//! coordinates) meets `GATEHOUSE_GEOIP_UNKNOWN`: `pass` by default (and the event says the check
//! was skipped), or `fail`. Earlier sign-ins without coordinates are not compared.
//!
//! Distances are great-circle (haversine on the mean Earth radius, 6371.0088 km): within 0.5% of
//! the geodesic on the ellipsoid, far below what IP geolocation is accurate to.

use crate::error::InternalError;
use crate::http::Location;

/// What a person refused by this policy is shown (a page of the gateway or the account page).
pub const REFUSED_PAGE_TEXT: &str = "Signing in is not allowed from your current location or network.";
/// The reference's built-in speed for impossible travel.
pub const MAX_KM_PER_HOUR: f64 = 1000.0;
pub const MEAN_EARTH_RADIUS_KM: f64 = 6371.0088;
/// Bounds on lists, so a typo in a setting is caught and the settings stay small.
const MAX_LIST: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unknown {
    #[default]
    Pass,
    Fail,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GeoIpSettings {
    /// ISO 3166-1 alpha-2 codes (upper case); non-empty: only these countries may sign in.
    pub countries_allow: Vec<String>,
    pub countries_deny: Vec<String>,
    /// Autonomous system numbers; non-empty allow: only these networks may sign in.
    pub asns_allow: Vec<u32>,
    pub asns_deny: Vec<u32>,
    /// The maximum distance check, in km; `None`: off.
    pub max_distance_km: Option<f64>,
    pub distance_tolerance_km: f64,
    /// How many earlier sign-ins the travel checks compare with.
    pub history: usize,
    pub impossible_travel: bool,
    pub impossible_tolerance_km: f64,
    pub unknown: Unknown,
}

/// The reference's default historical login count.
pub const DEFAULT_HISTORY: usize = 5;

impl Default for GeoIpSettings {
    fn default() -> Self {
        GeoIpSettings {
            countries_allow: Vec::new(),
            countries_deny: Vec::new(),
            asns_allow: Vec::new(),
            asns_deny: Vec::new(),
            max_distance_km: None,
            distance_tolerance_km: 0.0,
            history: DEFAULT_HISTORY,
            impossible_travel: false,
            impossible_tolerance_km: 0.0,
            unknown: Unknown::Pass,
        }
    }
}

impl GeoIpSettings {
    /// Any check configured (else nothing is looked up).
    pub fn active(&self) -> bool {
        self.network_active() || self.travel_active()
    }
    fn network_active(&self) -> bool {
        !(self.countries_allow.is_empty()
            && self.countries_deny.is_empty()
            && self.asns_allow.is_empty()
            && self.asns_deny.is_empty())
    }
    pub fn travel_active(&self) -> bool {
        self.max_distance_km.is_some() || self.impossible_travel
    }

    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<GeoIpSettings, InternalError> {
        let list = |name: &str| -> Vec<String> {
            get(name)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let countries = |name: &str| -> Result<Vec<String>, InternalError> {
            let v = list(name);
            if v.len() > MAX_LIST
                || !v
                    .iter()
                    .all(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphanumeric()))
            {
                return Err(InternalError::new(format!(
                    "{name} must be a comma-separated list of two-letter country codes (like DE,FR)"
                )));
            }
            Ok(v.into_iter().map(|c| c.to_ascii_uppercase()).collect())
        };
        let asns = |name: &str| -> Result<Vec<u32>, InternalError> {
            let v = list(name);
            if v.len() > MAX_LIST {
                return Err(InternalError::new(format!(
                    "{name} lists more than {MAX_LIST} networks"
                )));
            }
            v.iter()
                .map(|a| a.trim_start_matches("AS").parse::<u32>())
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    InternalError::new(format!(
                        "{name} must be a comma-separated list of AS numbers (like 3320,AS13335)"
                    ))
                })
        };
        let km = |name: &str| -> Result<Option<f64>, InternalError> {
            match get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && (0.0..=40_075.0).contains(n))
                    .map(Some)
                    .ok_or_else(|| InternalError::new(format!("{name} must be a number of km from 0 to 40075"))),
            }
        };
        let history = crate::config::whole_number(get, "GATEHOUSE_GEOIP_HISTORY", DEFAULT_HISTORY, 1, 50)?;
        let impossible_travel = crate::config::on_off(get, "GATEHOUSE_GEOIP_IMPOSSIBLE_TRAVEL")?;
        let unknown = match get("GATEHOUSE_GEOIP_UNKNOWN").as_deref().map(str::trim) {
            None | Some("" | "pass") => Unknown::Pass,
            Some("fail") => Unknown::Fail,
            Some(v) => {
                return Err(InternalError::new(format!(
                    "GATEHOUSE_GEOIP_UNKNOWN must be pass or fail (got {v:?})"
                )))
            }
        };
        Ok(GeoIpSettings {
            countries_allow: countries("GATEHOUSE_GEOIP_COUNTRIES_ALLOW")?,
            countries_deny: countries("GATEHOUSE_GEOIP_COUNTRIES_DENY")?,
            asns_allow: asns("GATEHOUSE_GEOIP_ASNS_ALLOW")?,
            asns_deny: asns("GATEHOUSE_GEOIP_ASNS_DENY")?,
            max_distance_km: km("GATEHOUSE_GEOIP_MAX_DISTANCE_KM")?,
            distance_tolerance_km: km("GATEHOUSE_GEOIP_DISTANCE_TOLERANCE_KM")?.unwrap_or(0.0),
            history,
            impossible_travel,
            impossible_tolerance_km: km("GATEHOUSE_GEOIP_IMPOSSIBLE_TOLERANCE_KM")?.unwrap_or(0.0),
            unknown,
        })
    }
}

/// An earlier sign-in with coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PastSignIn {
    pub at: i64,
    pub latitude: f64,
    pub longitude: f64,
}

/// Why the policy failed (for the event; the user is told only that the location was refused).
#[derive(Debug, Clone, PartialEq)]
pub enum GeoFailure {
    CountryDenied(String),
    CountryNotAllowed(String),
    AsnDenied(u32),
    AsnNotAllowed(u32),
    /// The request had no location for a configured check, and unknown locations fail.
    Unknown,
    TooFar {
        km: f64,
    },
    ImpossibleTravel {
        km: f64,
        hours: f64,
    },
}

impl GeoFailure {
    pub fn reason(&self) -> &'static str {
        match self {
            GeoFailure::CountryDenied(_) => "country_denied",
            GeoFailure::CountryNotAllowed(_) => "country_not_allowed",
            GeoFailure::AsnDenied(_) => "asn_denied",
            GeoFailure::AsnNotAllowed(_) => "asn_not_allowed",
            GeoFailure::Unknown => "location_unknown",
            GeoFailure::TooFar { .. } => "max_distance",
            GeoFailure::ImpossibleTravel { .. } => "impossible_travel",
        }
    }
}

/// What was decided: failures stop the sign-in; `skipped` says a check had no data and passed
/// under `GATEHOUSE_GEOIP_UNKNOWN=pass` (the event records it).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Judgement {
    pub failure: Option<GeoFailure>,
    pub skipped: bool,
}

/// Great-circle distance in km.
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * MEAN_EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

/// Judges a sign-in from `here` at `now` against the settings and the user's last sign-ins
/// (`history`, newest first; only the first `settings.history` count).
pub fn judge(settings: &GeoIpSettings, here: &Location, history: &[PastSignIn], now: i64) -> Judgement {
    let mut skipped = false;
    let mut unknown = || -> Option<GeoFailure> {
        skipped = true;
        (settings.unknown == Unknown::Fail).then_some(GeoFailure::Unknown)
    };
    let fail = |f: GeoFailure| Judgement {
        failure: Some(f),
        skipped: false,
    };
    if !settings.countries_allow.is_empty() || !settings.countries_deny.is_empty() {
        match here.country.as_deref() {
            Some(c) if settings.countries_deny.iter().any(|d| d == c) => {
                return fail(GeoFailure::CountryDenied(c.into()))
            }
            Some(c) if !settings.countries_allow.is_empty() && !settings.countries_allow.iter().any(|a| a == c) => {
                return fail(GeoFailure::CountryNotAllowed(c.into()))
            }
            Some(_) => {}
            None => {
                if let Some(f) = unknown() {
                    return fail(f);
                }
            }
        }
    }
    if !settings.asns_allow.is_empty() || !settings.asns_deny.is_empty() {
        match here.asn {
            Some(a) if settings.asns_deny.contains(&a) => return fail(GeoFailure::AsnDenied(a)),
            Some(a) if !settings.asns_allow.is_empty() && !settings.asns_allow.contains(&a) => {
                return fail(GeoFailure::AsnNotAllowed(a))
            }
            Some(_) => {}
            None => {
                if let Some(f) = unknown() {
                    return fail(f);
                }
            }
        }
    }
    if settings.travel_active() {
        match here.coordinates {
            None => {
                if let Some(f) = unknown() {
                    return fail(f);
                }
            }
            Some((lat, lon)) => {
                for past in history.iter().take(settings.history) {
                    let km = distance_km(past.latitude, past.longitude, lat, lon);
                    if let Some(max) = settings.max_distance_km {
                        if km > max + settings.distance_tolerance_km {
                            return fail(GeoFailure::TooFar { km });
                        }
                    }
                    if settings.impossible_travel {
                        let hours = (now - past.at).max(0) as f64 / 3600.0;
                        if km > MAX_KM_PER_HOUR * hours + settings.impossible_tolerance_km {
                            return fail(GeoFailure::ImpossibleTravel { km, hours });
                        }
                    }
                }
            }
        }
    }
    Judgement { failure: None, skipped }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BERLIN: (f64, f64) = (52.5200, 13.4050);
    const PARIS: (f64, f64) = (48.8566, 2.3522);
    const NEW_YORK: (f64, f64) = (40.7128, -74.0060);
    const T: i64 = 1_800_000_000;
    const HOUR: i64 = 3600;

    fn at(c: (f64, f64)) -> Location {
        Location {
            country: None,
            asn: None,
            coordinates: Some(c),
        }
    }
    fn past(c: (f64, f64), at: i64) -> PastSignIn {
        PastSignIn {
            at,
            latitude: c.0,
            longitude: c.1,
        }
    }
    fn lookup(pairs: &[(&str, &str)]) -> Result<GeoIpSettings, InternalError> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        GeoIpSettings::from_lookup(&move |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
    }

    #[test]
    fn distances_match_known_city_pairs() {
        let bp = distance_km(BERLIN.0, BERLIN.1, PARIS.0, PARIS.1);
        assert!((bp - 877.5).abs() < 2.0, "{bp}");
        let pn = distance_km(PARIS.0, PARIS.1, NEW_YORK.0, NEW_YORK.1);
        assert!((pn - 5837.0).abs() < 10.0, "{pn}");
        assert_eq!(distance_km(10.0, 20.0, 10.0, 20.0), 0.0);
        // Antipodes: half the circumference, no NaN.
        let half = distance_km(0.0, 0.0, 0.0, 180.0);
        assert!(
            (half - std::f64::consts::PI * MEAN_EARTH_RADIUS_KM).abs() < 1e-6,
            "{half}"
        );
    }

    #[test]
    fn country_and_asn_lists_deny_and_allow() {
        let s = lookup(&[
            ("GATEHOUSE_GEOIP_COUNTRIES_DENY", "kp, RU"),
            ("GATEHOUSE_GEOIP_ASNS_DENY", "AS64512"),
        ])
        .unwrap();
        let loc = |c: &str, a: u32| Location {
            country: Some(c.into()),
            asn: Some(a),
            coordinates: None,
        };
        assert_eq!(judge(&s, &loc("DE", 3320), &[], T), Judgement::default());
        assert_eq!(
            judge(&s, &loc("RU", 3320), &[], T).failure,
            Some(GeoFailure::CountryDenied("RU".into()))
        );
        assert_eq!(
            judge(&s, &loc("KP", 3320), &[], T).failure,
            Some(GeoFailure::CountryDenied("KP".into()))
        );
        assert_eq!(
            judge(&s, &loc("DE", 64512), &[], T).failure,
            Some(GeoFailure::AsnDenied(64512))
        );
        let s = lookup(&[
            ("GATEHOUSE_GEOIP_COUNTRIES_ALLOW", "DE,FR"),
            ("GATEHOUSE_GEOIP_ASNS_ALLOW", "3320"),
        ])
        .unwrap();
        assert_eq!(judge(&s, &loc("FR", 3320), &[], T).failure, None);
        assert_eq!(
            judge(&s, &loc("US", 3320), &[], T).failure,
            Some(GeoFailure::CountryNotAllowed("US".into()))
        );
        assert_eq!(
            judge(&s, &loc("DE", 7922), &[], T).failure,
            Some(GeoFailure::AsnNotAllowed(7922))
        );
    }

    #[test]
    fn a_request_without_location_passes_by_default_and_says_so_or_fails_when_configured() {
        let s = lookup(&[("GATEHOUSE_GEOIP_COUNTRIES_ALLOW", "DE")]).unwrap();
        let nowhere = Location::default();
        assert_eq!(
            judge(&s, &nowhere, &[], T),
            Judgement {
                failure: None,
                skipped: true
            }
        );
        let s = lookup(&[
            ("GATEHOUSE_GEOIP_COUNTRIES_ALLOW", "DE"),
            ("GATEHOUSE_GEOIP_UNKNOWN", "fail"),
        ])
        .unwrap();
        assert_eq!(judge(&s, &nowhere, &[], T).failure, Some(GeoFailure::Unknown));
        let s = lookup(&[("GATEHOUSE_GEOIP_ASNS_DENY", "1"), ("GATEHOUSE_GEOIP_UNKNOWN", "fail")]).unwrap();
        assert_eq!(judge(&s, &nowhere, &[], T).failure, Some(GeoFailure::Unknown));
        let s = lookup(&[
            ("GATEHOUSE_GEOIP_IMPOSSIBLE_TRAVEL", "on"),
            ("GATEHOUSE_GEOIP_UNKNOWN", "fail"),
        ])
        .unwrap();
        assert_eq!(judge(&s, &nowhere, &[], T).failure, Some(GeoFailure::Unknown));
        // Nothing configured: nothing skipped, nothing failed.
        assert_eq!(judge(&GeoIpSettings::default(), &nowhere, &[], T), Judgement::default());
        assert!(!GeoIpSettings::default().active());
        assert_eq!(GeoIpSettings::default(), lookup(&[]).unwrap());
    }

    #[test]
    fn the_maximum_distance_plus_tolerance_is_checked_against_each_of_the_last_n_sign_ins() {
        let s = lookup(&[
            ("GATEHOUSE_GEOIP_MAX_DISTANCE_KM", "800"),
            ("GATEHOUSE_GEOIP_DISTANCE_TOLERANCE_KM", "100"),
        ])
        .unwrap();
        assert_eq!(s.history, 5, "the reference's default historical login count");
        let bp = distance_km(BERLIN.0, BERLIN.1, PARIS.0, PARIS.1);
        // Berlin to Paris (877 km) is within 800 + 100.
        let near = [past(BERLIN, T - 10 * HOUR)];
        assert_eq!(judge(&s, &at(PARIS), &near, T).failure, None);
        // Exactly at the bound passes; just beyond fails.
        let mut edge = s.clone();
        edge.max_distance_km = Some(bp - 100.0);
        assert_eq!(judge(&edge, &at(PARIS), &near, T).failure, None);
        edge.max_distance_km = Some(bp - 100.0 - 0.001);
        assert!(matches!(
            judge(&edge, &at(PARIS), &near, T).failure,
            Some(GeoFailure::TooFar { .. })
        ));
        // Any of the last five too far fails; a sixth does not count.
        let mut five = vec![past(PARIS, T - HOUR); 4];
        five.push(past(NEW_YORK, T - 5 * HOUR));
        assert!(matches!(
            judge(&s, &at(PARIS), &five, T).failure,
            Some(GeoFailure::TooFar { .. })
        ));
        let mut six = vec![past(PARIS, T - HOUR); 5];
        six.push(past(NEW_YORK, T - 6 * HOUR));
        assert_eq!(judge(&s, &at(PARIS), &six, T).failure, None);
    }

    #[test]
    fn impossible_travel_is_1000_km_per_hour_plus_tolerance_at_the_boundary() {
        let s = lookup(&[
            ("GATEHOUSE_GEOIP_IMPOSSIBLE_TRAVEL", "on"),
            ("GATEHOUSE_GEOIP_IMPOSSIBLE_TOLERANCE_KM", "50"),
        ])
        .unwrap();
        let pn = distance_km(PARIS.0, PARIS.1, NEW_YORK.0, NEW_YORK.1);
        // Paris to New York (5837 km) needs (5837 - 50) / 1000 hours at least.
        let needed = ((pn - 50.0) / MAX_KM_PER_HOUR * 3600.0).ceil() as i64;
        let ok = [past(PARIS, T - needed)];
        assert_eq!(judge(&s, &at(NEW_YORK), &ok, T).failure, None);
        let fast = [past(PARIS, T - needed + 1)];
        assert!(matches!(
            judge(&s, &at(NEW_YORK), &fast, T).failure,
            Some(GeoFailure::ImpossibleTravel { .. })
        ));
        // Within the tolerance, no time is needed at all.
        let same = [past(PARIS, T)];
        assert_eq!(judge(&s, &at((PARIS.0 + 0.4, PARIS.1)), &same, T).failure, None);
        // Without the tolerance, a few km in no time is impossible.
        let mut strict = s.clone();
        strict.impossible_tolerance_km = 0.0;
        assert!(judge(&strict, &at((PARIS.0 + 0.4, PARIS.1)), &same, T)
            .failure
            .is_some());
        // Exactly at the bound is still possible: the same place in the same second, no tolerance.
        assert_eq!(judge(&strict, &at(PARIS), &same, T).failure, None);
    }

    #[test]
    fn settings_are_validated() {
        assert!(lookup(&[("GATEHOUSE_GEOIP_COUNTRIES_DENY", "Germany")]).is_err());
        assert!(lookup(&[("GATEHOUSE_GEOIP_ASNS_ALLOW", "AS12x")]).is_err());
        assert!(lookup(&[("GATEHOUSE_GEOIP_MAX_DISTANCE_KM", "-1")]).is_err());
        assert!(lookup(&[("GATEHOUSE_GEOIP_MAX_DISTANCE_KM", "NaN")]).is_err());
        assert!(lookup(&[("GATEHOUSE_GEOIP_HISTORY", "0")]).is_err());
        assert!(lookup(&[("GATEHOUSE_GEOIP_HISTORY", "51")]).is_err());
        assert!(lookup(&[("GATEHOUSE_GEOIP_IMPOSSIBLE_TRAVEL", "yes")]).is_err());
        assert!(lookup(&[("GATEHOUSE_GEOIP_UNKNOWN", "deny")]).is_err());
        let many = vec!["DE"; 257].join(",");
        assert!(lookup(&[("GATEHOUSE_GEOIP_COUNTRIES_ALLOW", &many)]).is_err());
        assert!(lookup(&[("GATEHOUSE_GEOIP_COUNTRIES_ALLOW", &vec!["DE"; 256].join(","))]).is_ok());
        assert!(lookup(&[("GATEHOUSE_GEOIP_ASNS_DENY", &vec!["1"; 257].join(","))]).is_err());
        assert!(lookup(&[("GATEHOUSE_GEOIP_ASNS_DENY", &vec!["1"; 256].join(","))]).is_ok());
        let s = lookup(&[
            ("GATEHOUSE_GEOIP_ASNS_ALLOW", "AS13335, 3320"),
            ("GATEHOUSE_GEOIP_COUNTRIES_ALLOW", "de"),
        ])
        .unwrap();
        assert_eq!(s.asns_allow, vec![13335, 3320]);
        assert_eq!(s.countries_allow, vec!["DE".to_owned()]);
        assert!(s.active());
    }
}
