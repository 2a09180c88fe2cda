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
/// it is any other expression (functions, operators, aggregations, offsets), or
/// does not tokenize. Read with the same tokenizer as [`add_matchers`].
pub fn plain_selectors(query: &str) -> Option<Vec<&str>> {
    let tokens = tokens(query).ok()?;
    let offset = |t: &str| t.as_ptr() as usize - query.as_ptr() as usize;
    let solid: Vec<&Token> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Other(s) if s.trim().is_empty()))
        .collect();
    let mut parts = Vec::new();
    let mut i = 0;
    loop {
        // A selector: a metric name with or without matchers, or matchers alone.
        let (start, end) = match solid.get(i) {
            Some(Token::Ident(name))
                if !is_one_of(name, KEYWORDS) && !is_one_of(name, LABEL_LISTS) =>
            {
                match solid.get(i + 1) {
                    Some(Token::Braces(b)) => {
                        i += 2;
                        (offset(name), offset(b) + b.len())
                    }
                    _ => {
                        i += 1;
                        (offset(name), offset(name) + name.len())
                    }
                }
            }
            Some(Token::Braces(b)) => {
                i += 1;
                (offset(b), offset(b) + b.len())
            }
            _ => return None,
        };
        parts.push(&query[start..end]);
        // Then the end, or `or` and the next selector.
        match solid.get(i) {
            None => return Some(parts),
            Some(Token::Ident(word)) if word.eq_ignore_ascii_case("or") => i += 1,
            _ => return None,
        }
    }
}

/// One lexical piece of PromQL, as far as matcher injection needs it.
#[derive(Debug, Clone, PartialEq)]
enum Token<'q> {
    /// A name: a metric, a function, a keyword, a label.
    Ident(&'q str),
    /// A `{...}` group, braces included (quotes respected).
    Braces(&'q str),
    /// A `[...]` group (a range or subquery), brackets included.
    Brackets(&'q str),
    /// A quoted string, quotes included.
    Str(&'q str),
    /// Anything else, one character or a run of whitespace or number.
    Other(&'q str),
}

/// Splits `query` into tokens; `Err` names what is unbalanced or unterminated.
fn tokens(query: &str) -> Result<Vec<Token<'_>>, String> {
    let bytes = query.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // The end of a quoted string starting at `from`, its closing quote included.
    let string_end = |from: usize| -> Result<usize, String> {
        let q = bytes[from];
        let mut j = from + 1;
        while j < bytes.len() {
            if bytes[j] == b'\\' && q != b'`' {
                j += 2;
                continue;
            }
            if bytes[j] == q {
                return Ok(j + 1);
            }
            j += 1;
        }
        Err(format!("unterminated string at character {}", from + 1))
    };
    // The end of a group opened at `from` by `open`, closed by `close`.
    let group_end = |from: usize, open: u8, close: u8| -> Result<usize, String> {
        let mut depth = 0usize;
        let mut j = from;
        while j < bytes.len() {
            match bytes[j] {
                b'"' | b'\'' | b'`' => {
                    j = string_end(j)?;
                    continue;
                }
                c if c == open => depth += 1,
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(j + 1);
                    }
                }
                _ => {}
            }
            j += 1;
        }
        Err(format!(
            "unbalanced {:?} at character {}",
            open as char,
            from + 1
        ))
    };
    let mut parens = 0i64;
    while i < bytes.len() {
        let c = bytes[i];
        let end = match c {
            b'{' => {
                let e = group_end(i, b'{', b'}')?;
                out.push(Token::Braces(&query[i..e]));
                e
            }
            b'[' => {
                let e = group_end(i, b'[', b']')?;
                out.push(Token::Brackets(&query[i..e]));
                e
            }
            b'}' | b']' => {
                return Err(format!("unbalanced {:?} at character {}", c as char, i + 1))
            }
            b'"' | b'\'' | b'`' => {
                let e = string_end(i)?;
                out.push(Token::Str(&query[i..e]));
                e
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let mut e = i;
                while e < bytes.len()
                    && (bytes[e].is_ascii_alphanumeric() || bytes[e] == b'_' || bytes[e] == b':')
                {
                    e += 1;
                }
                out.push(Token::Ident(&query[i..e]));
                e
            }
            c if c.is_ascii_digit() || c == b'.' => {
                // Numbers and durations (5m, 1h30m, 1e3) are one token.
                let mut e = i;
                while e < bytes.len() && (bytes[e].is_ascii_alphanumeric() || bytes[e] == b'.') {
                    e += 1;
                }
                out.push(Token::Other(&query[i..e]));
                e
            }
            _ => {
                if c == b'(' {
                    parens += 1;
                } else if c == b')' {
                    parens -= 1;
                    if parens < 0 {
                        return Err(format!("unbalanced ')' at character {}", i + 1));
                    }
                }
                let len = query[i..].chars().next().map_or(1, char::len_utf8);
                out.push(Token::Other(&query[i..i + len]));
                i + len
            }
        };
        i = end;
    }
    if parens != 0 {
        return Err("unbalanced '('".into());
    }
    Ok(out)
}

/// Words that are never metric names: aggregations (followed by `by`/`without` or
/// their parenthesis), binary and set operators, modifiers; and [`LABEL_LISTS`].
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
];

/// Words followed by a parenthesised list of label names, copied as written.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Checks that `query` is lexically sound PromQL as far as headroom reads it:
/// quotes terminated, braces, brackets and parentheses balanced. `Err` says what
/// and where.
pub fn check_query(query: &str) -> Result<(), String> {
    if query.trim().is_empty() {
        return Err("is empty".into());
    }
    tokens(query).map(|_| ())
}

/// Adds label matchers to every series selector of a query and to nothing else:
/// `a{x="1"} or b` → `a{x="1",m} or b{m}`; `max by (namespace, pod) (rate(x[5m]))`
/// → `max by (namespace, pod) (rate(x{m}[5m]))`. Aggregations, functions, label
/// lists (`by`, `without`, `on`, `ignoring`, `group_left/right`), ranges, strings
/// and numbers are copied as written. A query that does not tokenize (config check
/// refuses those) is returned unchanged.
pub fn add_matchers(query: &str, matchers: &str) -> String {
    let Ok(tokens) = tokens(query) else {
        return query.to_string();
    };
    let inject = |braces: &str| {
        let inner = &braces[1..braces.len() - 1];
        let sep = if inner.trim().is_empty() { "" } else { "," };
        format!("{{{inner}{sep}{matchers}}}")
    };
    // The next token that is not whitespace.
    let next_solid = |from: usize| {
        tokens[from..]
            .iter()
            .find(|t| !matches!(t, Token::Other(s) if s.trim().is_empty()))
    };
    let mut out = String::with_capacity(query.len() + 4 * matchers.len());
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Ident(word) if is_one_of(word, LABEL_LISTS) => {
                out.push_str(word);
                i += 1;
                // Copy up to and including the list's closing parenthesis.
                if matches!(next_solid(i), Some(Token::Other("("))) {
                    while i < tokens.len() {
                        let t = &tokens[i];
                        out.push_str(text(t));
                        i += 1;
                        if matches!(t, Token::Other(")")) {
                            break;
                        }
                    }
                }
                continue;
            }
            // Keywords (in any case, as PromQL reads them) and the numbers Inf and NaN.
            Token::Ident(word) if is_one_of(word, KEYWORDS) || is_one_of(word, &["inf", "nan"]) => {
                out.push_str(word)
            }
            Token::Ident(word) => match next_solid(i + 1) {
                // A function call.
                Some(Token::Other("(")) => out.push_str(word),
                // A selector with matchers (whitespace may stand between the name and
                // its braces): ours are joined to them.
                Some(Token::Braces(b)) => {
                    out.push_str(word);
                    let mut j = i + 1;
                    while let Some(Token::Other(space)) = tokens.get(j) {
                        if !space.trim().is_empty() {
                            break;
                        }
                        out.push_str(space);
                        j += 1;
                    }
                    out.push_str(&inject(b));
                    i = j + 1;
                    continue;
                }
                // A bare metric name.
                _ => {
                    out.push_str(word);
                    out.push_str(&format!("{{{matchers}}}"));
                }
            },
            // A selector by matchers alone ({__name__=~"..."}).
            Token::Braces(b) => out.push_str(&inject(b)),
            t => out.push_str(text(t)),
        }
        i += 1;
    }
    out
}

/// Whether `word` is one of `words`, in any case (PromQL's keywords are).
fn is_one_of(word: &str, words: &[&str]) -> bool {
    words.iter().any(|w| w.eq_ignore_ascii_case(word))
}

fn text<'q>(t: &Token<'q>) -> &'q str {
    match t {
        Token::Ident(s)
        | Token::Braces(s)
        | Token::Brackets(s)
        | Token::Str(s)
        | Token::Other(s) => s,
    }
}

/// `metric{...}` or `metric`, optionally joined by ` or `: the queries namespace
/// sharding can add a matcher to (every selector names its metric).
pub fn is_selector_union(query: &str) -> bool {
    plain_selectors(query).is_some_and(|parts| parts.iter().all(|p| !p.starts_with('{')))
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

    /// Issue 16: matchers go into series selectors only, never into label lists,
    /// function names, ranges or strings.
    #[test]
    fn matchers_go_into_selectors_only() {
        let m = r#"namespace="prod""#;
        assert_eq!(
            add_matchers(
                r#"max by (namespace, pod, container, id) (container_memory_working_set_bytes{container!=""})"#,
                m
            ),
            r#"max by (namespace, pod, container, id) (container_memory_working_set_bytes{container!="",namespace="prod"})"#
        );
        assert_eq!(
            add_matchers("rate(x[5m])", m),
            r#"rate(x{namespace="prod"}[5m])"#
        );
        assert_eq!(
            add_matchers(
                r#"sum without (id) (a) / on (pod) group_left (node) b{x="}"}"#,
                m
            ),
            r#"sum without (id) (a{namespace="prod"}) / on (pod) group_left (node) b{x="}",namespace="prod"}"#
        );
        assert_eq!(
            add_matchers(r#"max_over_time(m[1h:5m]) offset 5m > 0"#, m),
            r#"max_over_time(m{namespace="prod"}[1h:5m]) offset 5m > 0"#
        );
        assert_eq!(
            add_matchers(r#"{__name__=~"a|b"}"#, m),
            r#"{__name__=~"a|b",namespace="prod"}"#
        );
        assert_eq!(
            add_matchers(r#"label_replace(m, "dst", "$1", "src", "(.*)")"#, m),
            r#"label_replace(m{namespace="prod"}, "dst", "$1", "src", "(.*)")"#
        );
        // Whitespace before the braces; keywords in any case; Inf and NaN.
        assert_eq!(
            add_matchers(r#"m {a="b"}"#, m),
            r#"m {a="b",namespace="prod"}"#
        );
        assert_eq!(
            add_matchers("SUM BY (pod) (m) OFFSET 5m", m),
            r#"SUM BY (pod) (m{namespace="prod"}) OFFSET 5m"#
        );
        assert_eq!(
            add_matchers("clamp_max(m, Inf) != NaN", m),
            r#"clamp_max(m{namespace="prod"}, Inf) != NaN"#
        );
    }

    #[test]
    fn unsound_queries_are_named() {
        assert!(check_query(r#"m{a="b""#)
            .unwrap_err()
            .contains("unbalanced '{'"));
        assert!(check_query(r#"m{a="b}"#)
            .unwrap_err()
            .contains("unterminated string"));
        assert!(check_query("sum(m").unwrap_err().contains("unbalanced '('"));
        assert!(check_query("m[5m").unwrap_err().contains("unbalanced '['"));
        assert!(check_query("m}").unwrap_err().contains("unbalanced '}'"));
        assert!(check_query(" ").is_err());
        assert!(check_query(r#"max by (a) (rate(m{x=~"a|b"}[5m]))"#).is_ok());
    }

    #[test]
    fn selector_unions_are_told_from_expressions() {
        assert!(is_selector_union(r#"a{x="1"} or b"#));
        assert!(!is_selector_union("sum(a)"));
    }
}
