use crate::common::{demo_config, recagent_config, run, shared};

fn without_paths(mut v: serde_json::Value) -> serde_json::Value {
    v.as_object_mut().unwrap().remove("outputs");
    // One per run: the only manifest value that is not a function of the configuration.
    v.as_object_mut().unwrap().remove("run_id");
    v
}

#[test]
fn same_seed_gives_byte_identical_outputs_and_another_seed_differs() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let ra = run(demo_config(), a.path());
    let rb = run(demo_config(), b.path());
    assert_eq!(ra.messages, rb.messages);
    assert_eq!(ra.interactions, rb.interactions);
    assert_eq!(ra.metrics, rb.metrics);
    assert_eq!(
        without_paths(ra.manifest.clone()),
        without_paths(rb.manifest)
    );
    let mut other = demo_config();
    other.seed += 1;
    let rc = run(other, c.path());
    assert_ne!(ra.messages, rc.messages);
    assert_ne!(ra.interactions, rc.interactions);
}

#[test]
fn serial_and_parallel_give_identical_outputs() {
    let Some(dir) = shared("recagent") else {
        return;
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut serial = recagent_config(&dir, 1000, 3);
    serial.execution_mode = recagent::config::ExecutionMode::Serial;
    let mut parallel = serial.clone();
    parallel.execution_mode = recagent::config::ExecutionMode::Parallel;
    let (rs, rp) = (run(serial, a.path()), run(parallel, b.path()));
    assert_eq!(rs.messages, rp.messages);
    assert_eq!(rs.interactions, rp.interactions);
    assert_eq!(rs.metrics, rp.metrics);
    assert_eq!(rs.metrics.lines().count(), 4);
    // The parallel remember phase runs in parts, each counting its own requests: the counts
    // add up to the one batch's.
    for key in ["behaviour_requests", "behaviour_fallbacks", "summary"] {
        assert_eq!(rs.manifest[key], rp.manifest[key], "{key}");
    }
    assert!(rs.manifest["behaviour_requests"]["compress"].as_u64() > Some(1000));
}

#[test]
fn embedded_default_matches_the_repository_files() {
    // The embedded fallback (no config file on disk) must run the same simulation.
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ra = run(demo_config(), a.path());
    let rb = run(recagent::config::SimConfig::embedded().unwrap(), b.path());
    assert_eq!(ra.messages, rb.messages);
}
