//! Trace context across the hop (`opentelemetry` feature): the caller's
//! current span goes to the execution as `TRACEPARENT`, and the remote
//! function's `hype.function` span is its child, in the same trace, as the
//! remote program's exporter records it.

mod common;

use hype::RunEnvironment;
use hype_tests::process::env_var;
use hype_tests::spans::{self, TEST_SPANS_FILE};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

#[tokio::test]
async fn the_remote_function_span_is_a_child_of_the_callers_span() {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("caller")));
    // This test's thread only (a current-thread runtime): the call's
    // future is polled here.
    let _default = tracing::subscriber::set_default(subscriber);

    let setup = common::Setup::new().await;
    let spans_file = setup.path("spans.jsonl");
    let env = RunEnvironment::local().with_env(TEST_SPANS_FILE, spans_file.display().to_string());
    let caller = tracing::info_span!("caller");
    let context = caller.context().span().span_context().clone();
    assert!(
        context.is_valid(),
        "the caller's span has an OpenTelemetry context"
    );
    let trace_id = context.trace_id().to_string();

    let seen = setup
        .submitter
        .run(env_var("TRACEPARENT".to_owned()), &env)
        .instrument(caller.clone())
        .await
        .unwrap()
        .expect("the execution has TRACEPARENT");
    let parts: Vec<&str> = seen.split('-').collect();
    assert_eq!(parts.len(), 4, "{seen}");
    assert_eq!(parts[0], "00", "{seen}");
    assert_eq!(
        parts[1], trace_id,
        "the execution is in the caller's trace: {seen}"
    );
    assert_eq!(
        parts[2],
        context.span_id().to_string(),
        "its parent is the caller's span: {seen}"
    );

    let exported = spans::read(&spans_file);
    let function = exported
        .iter()
        .find(|s| s.name == "hype.function")
        .unwrap_or_else(|| panic!("the remote program exported hype.function: {exported:?}"));
    assert_eq!(function.trace_id, trace_id, "{function:?}");
    assert_eq!(function.parent_span_id, parts[2], "{function:?}");
    assert_ne!(function.span_id, parts[2]);

    // Without a context (no current span), nothing is passed on unless the
    // caller's own environment has one (unit-tested in hype-runtime).
    if std::env::var_os("TRACEPARENT").is_none() {
        let none = setup
            .submitter
            .run(env_var("TRACEPARENT".to_owned()), &env)
            .await
            .unwrap();
        assert_eq!(none, None);
    }
    setup.submitter.close().await.unwrap();
}
