//! PromQL as text: escaping values into matchers, scoping queries to a namespace and
//! extra identity labels, telling plain selectors from expressions, and adding
//! matchers to every selector (namespace sharding, `backtest --selector`). The one
//! home of PromQL text handling: the source's queries, config's checks and the
//! alerts' Prometheus links all use it. Queries are read and rewritten with the
//! `promql-parser` crate, Prometheus' grammar in Rust: no PromQL is parsed by hand.

use promql_parser::label::Matcher;
use promql_parser::parser::{
    self, token, BinModifier, Expr, VectorMatchCardinality, VectorSelector,
};
use promql_parser::util::visitor::{walk_expr_mut, ExprVisitorMut};

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

/// The plain series selectors a query is made of (`a{x="1"} or b`), each as
/// Prometheus would print it, or `None` when the query is any other expression
/// (functions, operators, aggregations, offsets, `or` with modifiers) or does not
/// parse.
pub fn plain_selectors(query: &str) -> Option<Vec<String>> {
    fn collect(expr: &Expr, out: &mut Vec<String>) -> bool {
        match expr {
            Expr::VectorSelector(vs) if vs.offset.is_none() && vs.at.is_none() => {
                out.push(vs.to_string());
                true
            }
            Expr::Binary(b)
                if b.op.id() == token::T_LOR && b.modifier.as_ref().is_none_or(is_plain) =>
            {
                collect(&b.lhs, out) && collect(&b.rhs, out)
            }
            _ => false,
        }
    }
    // `or` without `on (…)`/`ignoring (…)`: a plain union of series.
    fn is_plain(m: &BinModifier) -> bool {
        m.matching.is_none()
            && !m.return_bool
            && matches!(m.card, VectorMatchCardinality::ManyToMany)
    }
    let expr = parser::parse(query).ok()?;
    let mut out = Vec::new();
    collect(&expr, &mut out).then_some(out)
}

/// Checks that `query` parses as PromQL: syntax, known functions, argument types,
/// valid regexes. `Err` says what is wrong, as the parser reads it. Alternatives
/// inside a selector's braces (`{a="1" or b="2"}`) parse but are MetricsQL, which
/// Prometheus refuses: refused here too.
pub fn check_query(query: &str) -> Result<(), String> {
    if query.trim().is_empty() {
        return Err("is empty".into());
    }
    let expr = parser::parse(query)?;
    if selectors(&expr)
        .iter()
        .any(|s| !s.matchers.or_matchers.is_empty())
    {
        return Err(
            "`or` inside a selector's braces is MetricsQL, which Prometheus refuses".into(),
        );
    }
    Ok(())
}

/// The metric names a query reads: its selectors' names and `__name__` matchers.
/// `Err` when it does not parse.
pub fn metric_names(query: &str) -> Result<std::collections::BTreeSet<String>, String> {
    let expr = parser::parse(query)?;
    let mut names = std::collections::BTreeSet::new();
    for s in selectors(&expr) {
        names.extend(s.name.clone());
        names.extend(
            s.matchers
                .find_matchers("__name__")
                .into_iter()
                .map(|m| m.value),
        );
    }
    Ok(names)
}

/// Every series selector of `expr`, plain or with a range.
fn selectors(expr: &Expr) -> Vec<VectorSelector> {
    struct Collect(Vec<VectorSelector>);
    impl promql_parser::util::ExprVisitor for Collect {
        type Error = std::convert::Infallible;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
            match expr {
                Expr::VectorSelector(vs) => self.0.push(vs.clone()),
                Expr::MatrixSelector(ms) => self.0.push(ms.vs.clone()),
                _ => {}
            }
            Ok(true)
        }
    }
    let mut found = Collect(Vec::new());
    let Ok(_) = promql_parser::util::walk_expr(&mut found, expr);
    found.0
}

/// Adds label matchers (`namespace="prod",container=~"a|b"`, braces optional) to
/// every series selector of a query and to nothing else: `a{x="1"} or b` →
/// `a{x="1",m} or b{m}`; `max by (namespace, pod) (rate(x[5m]))` →
/// `max by (namespace, pod) (rate(x{m}[5m]))`. The query comes back as Prometheus
/// prints it (matchers sorted, durations normalised). `Err` names the part that
/// does not parse.
pub fn add_matchers(query: &str, matchers: &str) -> Result<String, String> {
    let added = parse_matchers(matchers).map_err(|e| format!("matchers {matchers:?}: {e}"))?;
    let mut expr = parser::parse(query).map_err(|e| format!("query {query:?}: {e}"))?;
    struct Add(Vec<Matcher>);
    impl ExprVisitorMut for Add {
        type Error = std::convert::Infallible;
        fn pre_visit(&mut self, expr: &mut Expr) -> Result<bool, Self::Error> {
            let selector = match expr {
                Expr::VectorSelector(vs) => vs,
                Expr::MatrixSelector(ms) => &mut ms.vs,
                _ => return Ok(true),
            };
            let m = &mut selector.matchers;
            if m.or_matchers.is_empty() {
                m.matchers.extend(self.0.iter().cloned());
            } else {
                // `{a="1" or b="2"}`: every alternative gets them.
                for group in &mut m.or_matchers {
                    group.extend(self.0.iter().cloned());
                }
            }
            Ok(true)
        }
    }
    let Ok(_) = walk_expr_mut(&mut Add(added), &mut expr);
    Ok(expr.to_string())
}

/// Reads `a="1",b=~"x"` or `{a="1",b=~"x"}` into matchers.
fn parse_matchers(text: &str) -> Result<Vec<Matcher>, String> {
    const PLACEHOLDER: &str = "headroom_matchers_placeholder";
    let inner = text.trim();
    let inner = inner
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(inner);
    match parser::parse(&format!("{PLACEHOLDER}{{{inner}}}"))? {
        Expr::VectorSelector(vs)
            if vs.offset.is_none() && vs.at.is_none() && vs.matchers.or_matchers.is_empty() =>
        {
            Ok(vs.matchers.matchers)
        }
        _ => Err("expected label matchers such as namespace=\"prod\"".into()),
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

    fn add(query: &str, matchers: &str) -> String {
        add_matchers(query, matchers).unwrap()
    }

    #[test]
    fn matchers_join_every_selector() {
        assert_eq!(
            add(
                "kube_pod_container_status_restarts_total or kube_pod_init_container_status_restarts_total",
                r#"namespace=~"a|b""#
            ),
            r#"kube_pod_container_status_restarts_total{namespace=~"a|b"} or kube_pod_init_container_status_restarts_total{namespace=~"a|b"}"#
        );
        assert_eq!(
            add(r#"m{container!="",container!="POD"}"#, r#"namespace="x""#),
            r#"m{container!="",container!="POD",namespace="x"}"#
        );
        assert_eq!(add("m", r#"a="b""#), r#"m{a="b"}"#);
        assert_eq!(add("m", r#"{a="b"}"#), r#"m{a="b"}"#);
        // Values come back escaped as they went in.
        assert_eq!(
            add(r#"m{a="x\"y"}"#, r#"b=~"a\\.b""#),
            r#"m{a="x\"y",b=~"a\\.b"}"#
        );
    }

    /// Issue 16: matchers go into series selectors only, never into label lists,
    /// function names, ranges or strings.
    #[test]
    fn matchers_go_into_selectors_only() {
        let m = r#"namespace="prod""#;
        assert_eq!(
            add(
                r#"max by (namespace, pod, container, id) (container_memory_working_set_bytes{container!=""})"#,
                m
            ),
            r#"max by (namespace, pod, container, id) (container_memory_working_set_bytes{container!="",namespace="prod"})"#
        );
        assert_eq!(add("rate(x[5m])", m), r#"rate(x{namespace="prod"}[5m])"#);
        assert_eq!(
            add(
                r#"sum without (id) (a) / on (pod) group_left (node) b{x="}"}"#,
                m
            ),
            r#"sum without (id) (a{namespace="prod"}) / on (pod) group_left (node) b{namespace="prod",x="}"}"#
        );
        assert_eq!(
            add(r#"max_over_time(m[1h:5m] offset 5m) > 0"#, m),
            r#"max_over_time(m{namespace="prod"}[1h:5m] offset 5m) > 0"#
        );
        assert_eq!(
            add(r#"{__name__=~"a|b"}"#, m),
            r#"{__name__=~"a|b",namespace="prod"}"#
        );
        assert_eq!(
            add(r#"label_replace(m, "dst", "$1", "src", "(.*)")"#, m),
            r#"label_replace(m{namespace="prod"}, "dst", "$1", "src", "(.*)")"#
        );
        // Whitespace before the braces; keywords in any case; Inf and NaN.
        assert_eq!(add(r#"m {a="b"}"#, m), r#"m{a="b",namespace="prod"}"#);
        assert_eq!(
            add("SUM BY (pod) (m offset 5m)", m),
            r#"sum by (pod) (m{namespace="prod"} offset 5m)"#
        );
        assert_eq!(
            add("clamp_max(m, Inf) != NaN", m),
            r#"clamp_max(m{namespace="prod"}, Inf) != NaN"#
        );
        // MetricsQL's alternatives inside one selector (VictoriaMetrics): each gets them.
        assert_eq!(
            add(r#"m{a="1" or b="2"}"#, m),
            r#"m{a="1", namespace="prod" or b="2", namespace="prod"}"#
        );
    }

    #[test]
    fn what_does_not_parse_is_named() {
        let err = add_matchers("sum(m", r#"a="b""#).unwrap_err();
        assert!(err.contains("query \"sum(m\""), "{err}");
        let err = add_matchers("m", r#"a="b"#).unwrap_err();
        assert!(err.starts_with("matchers"), "{err}");
        assert!(add_matchers("m", "m offset 5m").is_err());
    }

    #[test]
    fn unsound_queries_are_named() {
        let err = |q: &str| check_query(q).unwrap_err();
        assert!(err(r#"m{a="b""#).contains("inside braces"));
        assert!(err("sum(m").contains("unclosed left parenthesis"));
        assert!(err("m[5m").contains("inside brackets"));
        assert!(err("m}").contains("unexpected right brace"));
        assert!(err(r#"m{a=~"("}"#).contains("regex"));
        assert!(err("nosuchfunction(m)").contains("unknown function"));
        assert!(err(" ").contains("empty"));
        assert!(err(r#"m{a="1" or b="2"}"#).contains("MetricsQL"));
        assert!(check_query(r#"max by (a) (rate(m{x=~"a|b"}[5m]))"#).is_ok());
    }

    #[test]
    fn selector_unions_are_told_from_expressions() {
        assert!(is_selector_union(r#"a{x="1"} or b"#));
        assert!(!is_selector_union("sum(a)"));
        assert!(!is_selector_union(r#"{__name__="a"}"#));
    }
}
