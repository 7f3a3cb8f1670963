//! Trace context across the hop: every execution gets the caller's W3C
//! trace context as the environment variables `TRACEPARENT` and
//! `TRACESTATE` (OpenTelemetry's carrier for batch jobs), and `hype-run`
//! runs the function in a span `hype.function` whose parent is that
//! context.
//!
//! - With the `opentelemetry` feature, the context is the current
//!   `tracing` span's OpenTelemetry context (through
//!   `tracing-opentelemetry`, injected with the W3C propagator), when the
//!   caller has one; on the callee's side, `hype.function`'s parent is set
//!   from the variables. A program that installs an OpenTelemetry
//!   exporter sees caller and callee in one trace.
//! - Without the feature, or when the current span has no valid context, a
//!   `TRACEPARENT` (and `TRACESTATE`) in the caller's own environment is
//!   passed through unchanged, as a batch job passes on what it was
//!   started with.

/// The variable that carries the W3C `traceparent`.
pub(crate) const TRACEPARENT: &str = "TRACEPARENT";
/// The variable that carries the W3C `tracestate`.
pub(crate) const TRACESTATE: &str = "TRACESTATE";

/// The trace context an execution started now gets: the variables and
/// their values (none when there is no context).
pub(crate) fn outgoing() -> Vec<(String, String)> {
    #[cfg(feature = "opentelemetry")]
    {
        let injected = otel::inject_current();
        if !injected.is_empty() {
            return injected;
        }
    }
    passed_through(|name| std::env::var(name).ok())
}

/// The caller's own `TRACEPARENT` and `TRACESTATE`, when its
/// `TRACEPARENT` looks like one (`version-traceid-parentid-flags`, hex): a
/// malformed one is dropped rather than passed on.
fn passed_through(lookup: impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let Some(parent) = lookup(TRACEPARENT).filter(|p| looks_like_traceparent(p)) else {
        return Vec::new();
    };
    let mut vars = vec![(TRACEPARENT.to_owned(), parent)];
    if let Some(state) = lookup(TRACESTATE).filter(|s| !s.is_empty() && s.is_ascii()) {
        vars.push((TRACESTATE.to_owned(), state));
    }
    vars
}

/// `2 hex - 32 hex - 16 hex - 2 hex`, as W3C Trace Context's version 00
/// (later versions may append fields after a `-`).
fn looks_like_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.trim().split('-').collect();
    parts.len() >= 4
        && [2, 32, 16, 2]
            .iter()
            .zip(&parts)
            .all(|(len, part)| part.len() == *len && part.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The span a remote function runs in: `hype.function` with fields
/// `function` and `execution_id`; with the `opentelemetry` feature, a child
/// of the context in `TRACEPARENT`/`TRACESTATE` of this process's
/// environment.
pub(crate) fn function_span(function: &str, execution_id: &str) -> tracing::Span {
    let span = tracing::info_span!("hype.function", function, execution_id);
    #[cfg(feature = "opentelemetry")]
    otel::set_parent_from_env(&span);
    span
}

#[cfg(feature = "opentelemetry")]
mod otel {
    use std::collections::HashMap;

    use opentelemetry::propagation::TextMapPropagator as _;
    use opentelemetry::trace::TraceContextExt as _;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    use super::{TRACEPARENT, TRACESTATE};

    /// The current span's context as the two variables, if it is valid.
    pub(super) fn inject_current() -> Vec<(String, String)> {
        let context = tracing::Span::current().context();
        if !context.span().span_context().is_valid() {
            return Vec::new();
        }
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&context, &mut carrier);
        let mut vars = Vec::new();
        for (header, name) in [("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)] {
            if let Some(value) = carrier.remove(header).filter(|v| !v.is_empty()) {
                vars.push((name.to_owned(), value));
            }
        }
        vars
    }

    /// Makes `span` a child of the context in this process's environment.
    pub(super) fn set_parent_from_env(span: &tracing::Span) {
        let mut carrier = HashMap::new();
        for (name, header) in [(TRACEPARENT, "traceparent"), (TRACESTATE, "tracestate")] {
            if let Ok(value) = std::env::var(name) {
                carrier.insert(header.to_owned(), value);
            }
        }
        if carrier.is_empty() {
            return;
        }
        let context = TraceContextPropagator::new().extract(&carrier);
        if context.span().span_context().is_valid() {
            let _ = span.set_parent(context);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_and_its_state_pass_through_and_a_malformed_one_does_not() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(
            passed_through(env(&[
                (
                    "TRACEPARENT",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                ),
                ("TRACESTATE", "congo=t61rcWkgMzE"),
            ])),
            vec![
                (TRACEPARENT.to_owned(), parent.to_owned()),
                (TRACESTATE.to_owned(), "congo=t61rcWkgMzE".to_owned()),
            ]
        );
        assert_eq!(
            passed_through(env(&[(
                "TRACEPARENT",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            )])),
            vec![(TRACEPARENT.to_owned(), parent.to_owned())]
        );
        for bad in [
            "",
            "00-xyz-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-01",
        ] {
            let lookup = move |name: &str| (name == TRACEPARENT).then(|| bad.to_owned());
            assert!(passed_through(lookup).is_empty(), "{bad:?}");
        }
        assert!(passed_through(|_| None).is_empty());
    }
}
