//! Strategies for hostile texts, tokens and documents.

use super::doc::{look_alike, Hostile, Mutation, Node, Rename, Splice};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

/// Texts that have broken parsers before: quotes and escapes, controls, bidi and zero-width
/// characters, look-alikes, lone-surrogate escapes as text, numbers and dates at their limits,
/// URLs that change origin, percent sequences that decode to nothing valid.
const TEXTS: &[&str] = &[
    "",
    " ",
    "\t\n\r",
    "\0",
    "\"",
    "\\",
    "\\\"",
    "\"\\\"\\\\\"",
    "\\u0000",
    "\\ud800",
    "a\"b\\c",
    "\u{7f}\u{80}\u{9f}",
    "\u{2028}\u{2029}",
    "\u{200b}\u{200c}\u{200d}\u{2060}",
    "\u{202e}gnp.exe",
    "\u{feff}",
    "\u{fffd}",
    "\u{10ffff}",
    "e\u{301}\u{301}\u{301}\u{301}",
    "\u{1f600}\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}",
    "\u{130}\u{131}\u{df}\u{fb00}",
    "\u{3000}201\u{3000}",
    "\u{ff12}\u{ff10}\u{ff11}",
    "\u{662}\u{660}\u{661}",
    "jdoe@example.com",
    " jdoe@example.com ",
    "j\u{430}doe@ex\u{430}mple.com",
    "@example.com",
    "a@.com",
    "a@b",
    "a@b.c\u{0}",
    "cxone-agent",
    "CXONE-AGENT",
    "All Staff",
    "c\u{445}one-agent",
    "6f1c2d3e-0000-4000-8000-00000000a001",
    "create",
    "Create",
    "DELETE",
    "disable ",
    "user.created",
    "USER.DELETED",
    " user.updated ",
    "user.",
    "user.\u{441}reated",
    "merge",
    "True",
    "false",
    "FALSE",
    "yes",
    "1",
    "0",
    "201",
    " 201 ",
    "+201",
    "-1",
    "2e2",
    "0x1F",
    "65535",
    "65536",
    "4294967296",
    "18446744073709551616",
    "POST",
    "PATCH",
    "p\u{430}tch",
    "PUT",
    "GET",
    "W/\"1\"",
    "/Users",
    "/Users/",
    "/Users/abc",
    "Users/a%2fb%20c@x",
    "https://cxone.example/scim/v2/Users/92b725cd-9465-4e7d-8c16-01f8e146b87a",
    "https://x/Users/abc?attributes=id#f",
    "%",
    "%%",
    "%2",
    "%zz",
    "%ff%fe",
    "%E2%82",
    "%C0%AF",
    "%00",
    "%2F%2F",
    "///",
    "?#",
    "://",
    "\u{e9}://x",
    "https://",
    "https://graph.microsoft.com",
    "https://graph.microsoft.com/v1.0/users/delta?$skiptoken=x",
    "HTTPS://GRAPH.MICROSOFT.COM/v1.0/users/delta?$deltatoken=y",
    "https://graph.microsoft.com@evil.example/v1.0",
    "https://graph.microsoft.com.evil.example/v1.0",
    "https://graph.microsoft.com:443/v1.0",
    "https://graph.microsoft.c\u{43e}m/v1.0",
    "https://graph.microsoft.com\u{2024}evil/v1.0",
    "http://graph.microsoft.com/v1.0",
    "/v1.0/users/delta",
    "changed",
    "deleted",
    "CHANGED",
    "2026-11-30T09:15:00Z",
    "2026-11-22T10:49:17.250+01:00",
    "2026-11-30T09:15:00.123456789Z",
    "2026-11-30t09:15:00z",
    "2026-11-30 09:15:00Z",
    "2026-11-30T23:59:60Z",
    "2024-02-29T00:00:00Z",
    "2026-02-29T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-00-10T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "1969-12-31T23:59:59.999Z",
    "1970-01-01T00:00:00+00:01",
    "1970-01-01T00:00:00-23:59",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999-23:59",
    "2026-11-30T09:15:00+24:00",
    "2026-11-30T09:15:00.Z",
    "2026-11-30T09:15:00+01:0\u{e9}",
    "\u{ff12}026-11-30T09:15:00Z",
    "2026-11-30T09:15:00\u{e9}Z",
    "2026\u{2010}11-30T09:15:00Z",
    "urn:ietf:params:scim:api:messages:2.0:BulkResponse",
    "urn:ietf:params:scim:api:messages:2.0:Error",
    "invalidValue",
    "uniqueness",
    "null",
    "undefined",
    "NaN",
    "{}",
    "[]",
    "<script>",
    "' OR '1'='1",
    "userName eq \"x\" or userName pr",
];

/// Number tokens, in range for serde_json or not.
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "200",
    "201",
    "204",
    "207",
    "409",
    "429",
    "503",
    "0.0",
    "1.5",
    "200.0",
    "2e2",
    "1E400",
    "-1e400",
    "1e-400",
    "0.1e999999999",
    "65535",
    "65536",
    "4294967296",
    "9007199254740993",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "123456789012345678901234567890123456789012345678901234567890",
    "1.7976931348623157e308",
    "5e-324",
];

/// Tokens that are not JSON, or not in that place.
const RAW: &[&str] = &[
    "",
    ",",
    "]",
    "}",
    ":",
    "nul",
    "tru",
    "NaN",
    "Infinity",
    "-Infinity",
    "undefined",
    "'single'",
    "\"\\ud800\"",
    "\"\\udfff\\ud800\"",
    "\"\\ud800\\u0041\"",
    "\"\\u12\"",
    "\"\\x41\"",
    "\"unterminated",
    "\"\t\"",
    "\"\u{0}\"",
    "\u{feff}{}",
    "/* c */ 1",
    "0x10",
    "01",
    "-",
    "1e",
    ".5",
    "+1",
    "1.",
    "\"a\"\"b\"",
    "[,]",
    "{,}",
    "{\"a\"}",
    "{\"a\":1,}",
    "[1,]",
];

/// Names the parsers read, and names close to them.
pub const EVENT_FIELDS: &[&str] = &[
    "operation",
    "userName",
    "externalId",
    "firstName",
    "lastName",
    "email",
    "groups",
    "displayName",
    "id",
    "accountEnabled",
    "title",
    "department",
    "employeeNumber",
    "initial",
    "occurredAt",
    "type",
    "timestamp",
    "data",
    "username",
    "UserName",
];

pub const BULK_FIELDS: &[&str] = &[
    "schemas",
    "Operations",
    "operations",
    "method",
    "bulkId",
    "version",
    "location",
    "status",
    "response",
    "id",
    "scimType",
    "detail",
    "Status",
];

pub const GRAPH_FIELDS: &[&str] = &[
    "@odata.context",
    "@odata.nextLink",
    "@odata.deltaLink",
    "@odata.type",
    "manager@odata.navigationLink",
    "value",
    "id",
    "@removed",
    "reason",
    "userPrincipalName",
    "givenName",
    "surname",
    "mail",
    "accountEnabled",
    "jobTitle",
    "department",
    "employeeId",
    "displayName",
    "ID",
    "Id",
];

pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(TEXTS).prop_map(String::from),
        3 => any::<String>(),
        3 => "[\"\\\\/\\x00-\\x1f\\x7f\u{80}-\u{9f}\u{2028}\u{2029}\u{200b}-\u{200f}\u{202a}-\u{202e}\u{feff}\u{fffd}\u{10ffff}a-zA-Z0-9@.%:/ -]{0,40}",
        2 => (select(TEXTS), any::<String>(), select(TEXTS)).prop_map(|(a, b, c)| format!("{a}{b}{c}")),
        1 => select(TEXTS).prop_map(|t| t.chars().map(look_alike).collect()),
        1 => (any::<char>(), 0..10_000usize).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(NUMBERS).prop_map(String::from),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|f| format!("{f:e}")),
        1 => "-?[0-9]{1,400}(\\.[0-9]{1,40})?([eE][+-]?[0-9]{1,6})?",
    ]
}

pub fn leaf() -> impl Strategy<Value = Node> {
    prop_oneof![
        1 => Just(Node::Null),
        1 => any::<bool>().prop_map(Node::Bool),
        3 => number().prop_map(Node::Number),
        6 => text().prop_map(Node::Text),
        1 => select(RAW).prop_map(|r| Node::Raw(r.to_string())),
    ]
}

pub fn key(fields: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(fields).prop_map(String::from),
        1 => text(),
    ]
}

pub fn node(fields: &'static [&'static str]) -> impl Strategy<Value = Node> {
    leaf().prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Node::Array),
            vec((key(fields), inner), 0..6).prop_map(Node::Object),
        ]
    })
}

fn rename(fields: &'static [&'static str]) -> impl Strategy<Value = Rename> {
    prop_oneof![
        Just(Rename::Upper),
        Just(Rename::Lower),
        Just(Rename::LookAlike),
        select(&[' ', '\0', '\u{200b}', '\u{a0}', '\u{301}'][..]).prop_map(Rename::Suffix),
        key(fields).prop_map(Rename::To),
    ]
}

fn mutation(fields: &'static [&'static str]) -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        6 => (at, node(fields)).prop_map(|(at, with)| Mutation::Replace { at, with }),
        3 => (at, any::<u8>()).prop_map(|(at, how)| Mutation::Retype { at, how }),
        1 => (at, prop_oneof![9 => 1..8usize, 1 => 100..300usize], any::<bool>())
            .prop_map(|(at, depth, in_object)| Mutation::Nest { at, depth, in_object }),
        3 => (at, any::<usize>()).prop_map(|(at, member)| Mutation::Remove { at, member }),
        2 => (at, any::<usize>(), prop_oneof![9 => 1..4usize, 1 => 100..2_000usize])
            .prop_map(|(at, member, times)| Mutation::Repeat { at, member, times }),
        4 => (at, key(fields), node(fields)).prop_map(|(at, key, value)| Mutation::Insert { at, key, value }),
        3 => (at, any::<usize>(), rename(fields)).prop_map(|(at, member, how)| Mutation::Rename { at, member, how }),
    ]
}

fn splice() -> impl Strategy<Value = Splice> {
    prop_oneof![
        any::<usize>().prop_map(Splice::Cut),
        (any::<usize>(), vec(any::<u8>(), 1..8)).prop_map(|(at, b)| Splice::Insert(at, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Splice::Overwrite(at, b)),
    ]
}

/// One of `seeds` changed a few times; now and then its text broken too.
pub fn hostile(fields: &'static [&'static str]) -> impl Strategy<Value = Hostile> {
    (
        any::<usize>(),
        vec(mutation(fields), 1..6),
        prop_oneof![6 => Just(Vec::new()), 1 => vec(splice(), 1..3)],
    )
        .prop_map(|(seed, mutations, splices)| Hostile {
            seed,
            mutations,
            splices,
        })
}
