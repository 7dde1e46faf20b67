//! JSON shapes that more than one route crate returns (DESIGN.md, "Shapes").

use chrono::{DateTime, Datelike, Timelike, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize, Serializer};
use uuid::Uuid;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::{
    error::ApiError,
    repo::{items::Item, users::User},
};

/// A user as clients see it: never the password hash.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// An item as clients see it, and as webhooks' `item.*` events carry it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ItemView {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl From<Item> for ItemView {
    fn from(i: Item) -> Self {
        Self {
            id: i.id,
            title: i.title,
            description: i.description,
            created_at: i.created_at,
            updated_at: i.updated_at,
        }
    }
}

/// A page of a list endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page of at most `limit` of `rows`, fetched with `limit + 1` rows so one more tells
    /// that another page exists (no count query); the cursor is the last shown row's `id`.
    pub fn from_rows<R>(
        mut rows: Vec<R>,
        limit: u32,
        id: impl Fn(&R) -> Uuid,
        view: impl FnMut(R) -> T,
    ) -> Self {
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|r| encode_cursor(id(r)))
        } else {
            None
        };
        Self {
            items: rows.into_iter().map(view).collect(),
            next_cursor,
        }
    }
}

/// Page size when `limit` is not given.
pub const DEFAULT_PAGE_LIMIT: u32 = 20;
/// The largest `limit`.
pub const MAX_PAGE_LIMIT: u32 = 100;

/// `?limit=&cursor=` of a keyset-paginated list (newest first, by UUIDv7 id).
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PageParams {
    /// Page size, 1–100 (default 20).
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page (empty: the first page).
    #[schemars(regex(pattern = r"^([A-Za-z0-9_-]{21}[AQgw])?$"))]
    pub cursor: Option<String>,
}

impl PageParams {
    /// The id to list before (none for the first page) and the page size; a 400 naming the
    /// parameter otherwise.
    pub fn parse(&self) -> Result<(Option<Uuid>, u32), ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
        if !(1..=MAX_PAGE_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request("limit must be between 1 and 100"));
        }
        let before = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => {
                Some(decode_cursor(c).ok_or_else(|| ApiError::bad_request("invalid cursor"))?)
            }
        };
        Ok((before, limit))
    }
}

/// Cursors are opaque to clients: the last id of a page, base64url-encoded, so the encoding
/// can change without breaking anyone who treats it as a string.
pub fn encode_cursor(last: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(last.as_bytes())
}

pub fn decode_cursor(cursor: &str) -> Option<Uuid> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    Uuid::from_slice(&bytes).ok()
}

/// Serialises a timestamp exactly as chrono's `Serialize` does (RFC 3339, `Z`, 0/3/6/9
/// fractional digits as needed) without going through `Display` one character at a time:
/// chrono's path was ~7 % of the host's CPU for a 100-item page (perf, `scripts/bench`).
/// Use as `#[serde(serialize_with = "shared::views::rfc3339")]`.
pub fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 30];
    match format_rfc3339(t, &mut buf) {
        Some(text) => s.serialize_str(text),
        // Years outside 0000–9999 and leap seconds: chrono's own (rare, slower) path.
        None => t.serialize(s),
    }
}

/// [`rfc3339`] for optional timestamps (`null` when absent).
pub fn rfc3339_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

fn format_rfc3339<'b>(t: &DateTime<Utc>, buf: &'b mut [u8; 30]) -> Option<&'b str> {
    fn digits(out: &mut [u8], mut value: u32) {
        for slot in out.iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let nanos = t.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    digits(&mut buf[0..4], year);
    buf[4] = b'-';
    digits(&mut buf[5..7], t.month());
    buf[7] = b'-';
    digits(&mut buf[8..10], t.day());
    buf[10] = b'T';
    digits(&mut buf[11..13], t.hour());
    buf[13] = b':';
    digits(&mut buf[14..16], t.minute());
    buf[16] = b':';
    digits(&mut buf[17..19], t.second());
    let mut len = 19;
    let (fraction, width) = if nanos == 0 {
        (0, 0)
    } else if nanos.is_multiple_of(1_000_000) {
        (nanos / 1_000_000, 3)
    } else if nanos.is_multiple_of(1_000) {
        (nanos / 1_000, 6)
    } else {
        (nanos, 9)
    };
    if width > 0 {
        buf[len] = b'.';
        digits(&mut buf[len + 1..len + 1 + width], fraction);
        len += 1 + width;
    }
    buf[len] = b'Z';
    std::str::from_utf8(&buf[..=len]).ok()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[derive(Serialize)]
    struct Fast(#[serde(serialize_with = "rfc3339")] DateTime<Utc>);

    #[derive(Serialize)]
    struct Fastopt(#[serde(serialize_with = "rfc3339_opt")] Option<DateTime<Utc>>);

    #[test]
    fn timestamps_serialise_exactly_as_chrono_does() {
        let base = Utc.with_ymd_and_hms(2026, 11, 30, 18, 4, 5).unwrap();
        let mut cases = vec![
            base,
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap(),
        ];
        for nanos in [
            1,
            10,
            999,
            1_000,
            120_000,
            1_000_000,
            5_000_000,
            123_456_789,
            999_999_999,
        ] {
            cases.push(base + chrono::Duration::nanoseconds(nanos));
        }
        // A leap second (nanosecond field ≥ 1e9) takes chrono's own path.
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .map(|n| n.and_utc());
        cases.extend(leap);
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let secs = (seed % 4_000_000_000) as i64;
            let nanos = (seed >> 32) as u32 % 1_000_000_000;
            let nanos =
                [nanos, nanos / 1000 * 1000, nanos / 1_000_000 * 1_000_000][(seed % 3) as usize];
            cases.extend(Utc.timestamp_opt(secs, nanos).single());
        }
        for t in cases {
            let expected = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::to_string(&Fast(t)).unwrap(), expected);
            assert_eq!(serde_json::to_string(&Fastopt(Some(t))).unwrap(), expected);
        }
        assert_eq!(serde_json::to_string(&Fastopt(None)).unwrap(), "null");
    }

    /// What `PageParams`' documented cursor pattern says: 21 base64url characters and one of
    /// `A`, `Q`, `g`, `w` (16 bytes leave 2 bits in the last character), and exactly those
    /// decode.
    #[test]
    fn cursors_are_what_the_documented_pattern_says() {
        const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for _ in 0..200 {
            let c = encode_cursor(Uuid::new_v4());
            assert_eq!(c.len(), 22, "{c}");
            assert!(c[..21].chars().all(|ch| ALPHABET.contains(ch)), "{c}");
            assert!("AQgw".contains(&c[21..]), "{c}");
        }
        for last in ALPHABET.chars() {
            let c = format!("{}{last}", "Ab-_".repeat(5) + "x");
            assert_eq!(decode_cursor(&c).is_some(), "AQgw".contains(last), "{c}");
        }
    }
}
