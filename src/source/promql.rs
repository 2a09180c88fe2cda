//! PromQL as text: escaping values into matchers, scoping queries to a namespace and
//! extra identity labels, telling plain selectors from expressions, and adding
//! matchers to every selector (namespace sharding, `backtest --selector`). The one
//! home of PromQL text handling: the source's queries, config's checks and the
//! alerts' Prometheus links all use it.

/// Matchers for a namespace and extra identity labels: `namespace="prod",cluster="eu"`.
pub fn scope(namespace: &str, extra: &[(String, String)]) -> String {
    let mut out = format!(r#"namespace="{}""#, label_escape(namespace));
    for (name, value) in extra {
        out.push_str(&format!(r#",{name}="{}""#, label_escape(value)));
    }
    out
}

/// Escapes a value for a PromQL equality matcher inside double quotes.
pub fn label_escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
        .replace('\t', "\\t")
}

/// Escapes a value for a PromQL regex matcher inside double quotes.
pub fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if "\\.+*?()|[]{}^$".contains(ch) {
            out.push_str("\\\\");
        }
        if ch == '"' {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// The plain series selectors a query is made of (`a{x="1"} or b`), or `None` when
/// it is any other expression (functions, operators, aggregations, offsets).
pub fn plain_selectors(query: &str) -> Option<Vec<&str>> {
    let bytes = query.as_bytes();
    let mut parts = Vec::new();
    let mut start = 0;
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) => {
                if c == b'\\' {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                b'"' | b'\'' | b'`' => quote = Some(c),
                b'{' => depth += 1,
                b'}' => depth = depth.checked_sub(1)?,
                b'o' if depth == 0
                    && query[i..].starts_with("or")
                    && i > 0
                    && bytes[i - 1].is_ascii_whitespace()
                    && bytes.get(i + 2).is_some_and(u8::is_ascii_whitespace) =>
                {
                    parts.push(&query[start..i]);
                    start = i + 2;
                    i += 1;
                }
                _ => {}
            },
        }
        i += 1;
    }
    if quote.is_some() || depth != 0 {
        return None;
    }
    parts.push(&query[start..]);
    let plain = |part: &str| {
        let name_end = part
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(part.len());
        let (name, rest) = part.split_at(name_end);
        let name_ok = name.is_empty()
            || name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
        let rest_ok = rest.is_empty() || (rest.starts_with('{') && one_brace_group(rest));
        name_ok && rest_ok && !(name.is_empty() && rest.is_empty())
    };
    let parts: Vec<&str> = parts.into_iter().map(str::trim).collect();
    parts.iter().all(|p| plain(p)).then_some(parts)
}

/// Whether `text` is one `{...}` group and nothing after it (quotes respected).
fn one_brace_group(text: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' || c == '`' => quote = Some(c),
            None if c == '}' => return i + 1 == text.len(),
            None => {}
        }
    }
    false
}

/// Adds label matchers to every selector of a query (`a{x="1"} or b` →
/// `a{x="1",m} or b{m}`), for namespace sharding of queries like the default
/// restarts query. Metric names are words before `{` or at word boundaries; this is
/// enough for the selector-only queries headroom runs.
pub fn add_matchers(query: &str, matchers: &str) -> String {
    let mut out = String::with_capacity(query.len() + matchers.len() * 2);
    let chars: Vec<char> = query.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push_str(&word);
            let keyword = matches!(
                word.as_str(),
                "or" | "and"
                    | "unless"
                    | "by"
                    | "without"
                    | "on"
                    | "ignoring"
                    | "count"
                    | "sum"
                    | "max"
                    | "min"
                    | "avg"
            );
            if keyword {
                continue;
            }
            if chars.get(i) == Some(&'{') {
                let close = chars[i..].iter().position(|&c| c == '}').map(|p| p + i);
                if let Some(close) = close {
                    let inner: String = chars[i + 1..close].iter().collect();
                    let sep = if inner.trim().is_empty() { "" } else { "," };
                    out.push_str(&format!("{{{inner}{sep}{matchers}}}"));
                    i = close + 1;
                    continue;
                }
            }
            out.push_str(&format!("{{{matchers}}}"));
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// `metric{...}` or `metric`, optionally joined by ` or `: the queries namespace
/// sharding can add a matcher to.
pub fn is_selector_union(query: &str) -> bool {
    query.split(" or ").all(|part| {
        let part = part.trim();
        let (name, rest) = match part.find('{') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        let rest_ok = rest.is_empty()
            || (rest.starts_with('{')
                && rest.ends_with('}')
                && rest[1..rest.len() - 1]
                    .chars()
                    .all(|c| c != '{' && c != '}'));
        name_ok && rest_ok
    })
}

pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_join_every_selector() {
        assert_eq!(
            add_matchers(
                "kube_pod_container_status_restarts_total or kube_pod_init_container_status_restarts_total",
                r#"namespace=~"a|b""#
            ),
            r#"kube_pod_container_status_restarts_total{namespace=~"a|b"} or kube_pod_init_container_status_restarts_total{namespace=~"a|b"}"#
        );
        assert_eq!(
            add_matchers(r#"m{container!="",container!="POD"}"#, r#"namespace="x""#),
            r#"m{container!="",container!="POD",namespace="x"}"#
        );
    }

    #[test]
    fn matchers_join_the_first_selector() {
        assert_eq!(
            add_matchers(
                r#"m{container!="",container!="POD"}"#,
                r#"namespace="prod""#
            ),
            r#"m{container!="",container!="POD",namespace="prod"}"#
        );
        assert_eq!(add_matchers("m", r#"a="b""#), r#"m{a="b"}"#);
        assert_eq!(add_matchers("m{}", r#"a="b""#), r#"m{a="b"}"#);
    }

    #[test]
    fn selector_unions_are_told_from_expressions() {
        assert!(is_selector_union(r#"a{x="1"} or b"#));
        assert!(!is_selector_union("sum(a)"));
    }
}
