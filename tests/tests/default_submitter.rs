//! The process-wide default submitter behind `Call::run_on_cluster` (its own
//! test binary, since the default is set once per process).

mod common;

use hype::{LocalCluster, RunEnvironment, Submitter};

#[tokio::test]
async fn run_on_cluster_uses_the_default_and_it_is_set_once() {
    let submitter = Submitter::builder(LocalCluster::new().program(common::worker()))
        .build()
        .await
        .unwrap();
    Submitter::set_default(submitter.clone()).unwrap();
    let n = hype_tests::math::word_count("one two three".into())
        .run_on_cluster(&RunEnvironment::local())
        .await
        .unwrap();
    assert_eq!(n, 3);
    let again = Submitter::set_default(submitter).unwrap_err();
    assert!(again.to_string().contains("already set"), "{again}");
}
