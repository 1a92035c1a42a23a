//! NetworkManager's device specs (`interface-name:`, `mac:`, `type:`, `except:`, globs) and how
//! they match a device, as `nm_match_spec_device()` does.

use super::LinkFacts;

/// What a device spec is matched against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceMatch {
    pub interface_name: String,
    pub device_type: Option<String>,
    pub hwaddr: Option<Vec<u8>>,
}

impl From<&LinkFacts> for DeviceMatch {
    fn from(link: &LinkFacts) -> Self {
        DeviceMatch {
            interface_name: link.name.clone(),
            device_type: Some(link.nm_type.clone()),
            hwaddr: link.mac.as_deref().and_then(parse_hwaddr),
        }
    }
}

/// The outcome of matching a spec list (`nm_match_spec_device()`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecMatch {
    /// Matched; the spec that did it (or the except: specs of an except-only list).
    Match(String),
    /// An `except:` spec matched: explicitly not this device.
    NegativeMatch(String),
    NoMatch,
}

/// Splits a device spec list on `,` and `;` with NetworkManager's escapes (`\,` `\;` `\s` `\t`
/// `\n` `\r` `\\`), trimming unescaped whitespace around each spec (`nm_match_spec_split()`).
pub fn split_specs(value: &str) -> Vec<String> {
    let mut specs = Vec::new();
    let mut current = String::new();
    let mut trailing_ws = 0usize;
    let mut chars = value.trim_start().chars();
    let mut push = |current: &mut String, trailing_ws: usize| {
        let keep = current.len() - trailing_ws;
        if keep > 0 {
            specs.push(current[..keep].to_owned());
        }
        current.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                match chars.next() {
                    Some('s') => current.push(' '),
                    Some('t') => current.push('\t'),
                    Some('n') => current.push('\n'),
                    Some('r') => current.push('\r'),
                    Some('\\') => current.push('\\'),
                    Some(sep @ (',' | ';')) => current.push(sep),
                    Some(other) => {
                        current.push('\\');
                        current.push(other);
                    }
                    None => {}
                }
                trailing_ws = 0;
            }
            ',' | ';' => {
                push(&mut current, trailing_ws);
                trailing_ws = 0;
                chars = chars.as_str().trim_start().chars();
            }
            c if c.is_ascii_whitespace() => {
                current.push(c);
                trailing_ws += 1;
            }
            c => {
                current.push(c);
                trailing_ws = 0;
            }
        }
    }
    push(&mut current, trailing_ws);
    specs
}

/// Matches `device` against a spec list with NetworkManager's rules: `*`;
/// `interface-name:NAME` (`*`/`?` globs; `~` also globs; `=` is literal); `mac:HWADDR`;
/// `type:TYPE`; bare `NAME` or `HWADDR`; `except:SPEC` negates and beats every positive match; a
/// list of only `except:` specs matches every device none of them matches. `driver:`,
/// `s390-subchannels:` and `dhcp-plugin:` cannot be evaluated from files and never match.
pub fn match_specs<S: AsRef<str>>(specs: &[S], device: &DeviceMatch) -> SpecMatch {
    let mut has_except = false;
    let mut has_positive = false;
    let mut positive: Option<String> = None;
    let mut negative: Option<String> = None;
    let mut excepts = Vec::new();
    for spec in specs {
        let spec = spec.as_ref();
        if spec.is_empty() {
            continue;
        }
        let (except, body) = match strip_tag(spec, "except:") {
            Some(body) => (true, body),
            None => (false, spec),
        };
        if except {
            has_except = true;
            excepts.push(spec.to_owned());
            if negative.is_none() && spec_matches(body, device, false) {
                negative = Some(spec.to_owned());
            }
        } else {
            has_positive = true;
            if positive.is_none() && spec_matches(body, device, true) {
                positive = Some(spec.to_owned());
            }
        }
    }
    if let Some(spec) = negative {
        return SpecMatch::NegativeMatch(spec);
    }
    if has_except && !has_positive {
        return SpecMatch::Match(excepts.join(","));
    }
    positive.map_or(SpecMatch::NoMatch, SpecMatch::Match)
}

fn strip_tag<'a>(spec: &'a str, tag: &str) -> Option<&'a str> {
    let head = spec.get(..tag.len())?;
    head.eq_ignore_ascii_case(tag).then(|| &spec[tag.len()..])
}

fn spec_matches(spec: &str, device: &DeviceMatch, allow_bare: bool) -> bool {
    if spec == "*" {
        return true;
    }
    if let Some(kind) = strip_tag(spec, "type:") {
        return device.device_type.as_deref() == Some(kind);
    }
    if let Some(mac) = strip_tag(spec, "mac:") {
        return hwaddr_matches(mac, device);
    }
    if let Some(name) = strip_tag(spec, "interface-name:") {
        return match name.strip_prefix('=') {
            Some(literal) => literal == device.interface_name,
            None => {
                let pattern = name.strip_prefix('~').unwrap_or(name);
                pattern == device.interface_name || glob_match(pattern, &device.interface_name)
            }
        };
    }
    if ["driver:", "s390-subchannels:", "dhcp-plugin:"]
        .iter()
        .any(|tag| strip_tag(spec, tag).is_some())
    {
        return false;
    }
    allow_bare && (spec == device.interface_name || hwaddr_matches(spec, device))
}

fn hwaddr_matches(spec: &str, device: &DeviceMatch) -> bool {
    match (parse_hwaddr(spec), &device.hwaddr) {
        (Some(wanted), Some(have)) => &wanted == have,
        _ => false,
    }
}

/// `aa:bb:cc:dd:ee:ff` or `aa-bb-...`, any case.
pub fn parse_hwaddr(text: &str) -> Option<Vec<u8>> {
    let bytes: Option<Vec<u8>> = text
        .split([':', '-'])
        .map(|part| {
            (part.len() == 2)
                .then(|| u8::from_str_radix(part, 16).ok())
                .flatten()
        })
        .collect();
    bytes.filter(|b| !b.is_empty() && b.len() <= 20)
}

/// GLib's `g_pattern_match_simple()`: `*` is any run, `?` any one character, nothing else special.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}
