//! Reads back what the filter and URL builders write, as a server would, without serde_json.

/// `attr eq "value"` split as a SCIM filter parser splits it: the attribute up to the first
/// space, the `eq` operator, one string token up to its first unescaped quote, nothing after.
pub fn read_eq(filter: &str) -> Result<(&str, String), String> {
    let (attribute, rest) = filter.split_once(' ').ok_or("no space after the attribute")?;
    let rest = rest.strip_prefix("eq ").ok_or("no `eq` operator")?;
    let mut chars = rest.chars();
    if chars.next() != Some('"') {
        return Err("the value does not open with a quote".into());
    }
    let mut value = String::new();
    loop {
        match chars.next().ok_or("the value is not closed")? {
            '"' => break,
            '\\' => value.push(escaped(&mut chars)?),
            c if u32::from(c) < 0x20 => return Err(format!("raw control character {c:?} in the value")),
            c => value.push(c),
        }
    }
    match chars.as_str() {
        "" => Ok((attribute, value)),
        after => Err(format!("{after:?} after the closing quote")),
    }
}

fn escaped(chars: &mut std::str::Chars<'_>) -> Result<char, String> {
    Ok(match chars.next().ok_or("a lone backslash")? {
        '"' => '"',
        '\\' => '\\',
        '/' => '/',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'u' => {
            let unit = hex4(chars)?;
            if (0xd800..0xdc00).contains(&unit) {
                if chars.next() != Some('\\') || chars.next() != Some('u') {
                    return Err("a high surrogate without its low half".into());
                }
                let low = hex4(chars)?;
                if !(0xdc00..0xe000).contains(&low) {
                    return Err("a high surrogate followed by no low one".into());
                }
                let code = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
                char::from_u32(code).ok_or("an invalid surrogate pair")?
            } else {
                char::from_u32(unit).ok_or("a lone low surrogate")?
            }
        }
        other => return Err(format!("unknown escape \\{other}")),
    })
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Result<u32, String> {
    let digits: String = chars.take(4).collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("\\u{digits} is not four hexadecimal digits"));
    }
    u32::from_str_radix(&digits, 16).map_err(|e| e.to_string())
}

/// Decodes `%XX`; refuses anything but unreserved characters and upper-case escapes, and
/// decoded bytes that are not UTF-8.
pub fn read_component(encoded: &str) -> Result<String, String> {
    let mut bytes = Vec::new();
    let mut rest = encoded.bytes();
    while let Some(b) = rest.next() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => bytes.push(b),
            b'%' => {
                let hex = [rest.next(), rest.next()];
                let [Some(hi), Some(lo)] = hex else {
                    return Err("a short escape".into());
                };
                let digit = |d: u8| match d {
                    b'0'..=b'9' => Ok(d - b'0'),
                    b'A'..=b'F' => Ok(d - b'A' + 10),
                    _ => Err(format!("escape digit {:?}", char::from(d))),
                };
                bytes.push(digit(hi)? * 16 + digit(lo)?);
            }
            other => return Err(format!("{:?} left unencoded", char::from(other))),
        }
    }
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

#[test]
fn the_reader_refuses_what_a_server_would_misread() {
    assert_eq!(
        read_eq(r#"userName eq "a\"b\\c""#),
        Ok(("userName", r#"a"b\c"#.to_string()))
    );
    assert_eq!(
        read_eq(r#"userName eq "\ud83d\ude00""#),
        Ok(("userName", "\u{1f600}".to_string()))
    );
    for broken in [
        r#"userName eq "a"b""#,
        r#"userName eq "a"#,
        "userName eq \"a\tb\"",
        r#"userName eq "a\"#,
        r#"userName eq "\ud83d""#,
        r#"userName eq "\x41""#,
        r#"userName eq "a" or userName pr"#,
        r#"userName  eq "a""#,
    ] {
        assert!(read_eq(broken).is_err(), "{broken:?} read");
    }
    assert_eq!(read_component("a%20b%2F%C3%A9"), Ok("a b/\u{e9}".to_string()));
    for broken in ["a b", "%2f", "%2", "%C3", "a/b"] {
        assert!(read_component(broken).is_err(), "{broken:?} read");
    }
}
