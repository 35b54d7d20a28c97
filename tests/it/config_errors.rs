//! A bad configuration value stops the binary at start-up, naming the variable.

use crate::support::{sigstage, stderr, test_vars};

#[test]
fn bad_values_fail_at_start_up_naming_the_variable() {
    let cases = [
        ("SIGSTAGE_HTTP_ADDR", "not-an-address"),
        ("SIGSTAGE_KAFKA_PARTITIONS", "0"),
        ("SIGSTAGE_CLICKHOUSE_URL", "ftp://x"),
        ("SIGSTAGE_HTTP_ADRR", "127.0.0.1:1"),
    ];
    for (name, value) in cases {
        let mut vars = test_vars();
        vars.insert(name.into(), value.into());
        let output = sigstage(&["migrate"], &vars);
        assert_eq!(output.status.code(), Some(2), "{name}={value}: {}", stderr(&output));
        let message = stderr(&output);
        assert!(message.contains("configuration error") && message.contains(name), "{message}");
    }
}

#[test]
fn secrets_in_bad_values_are_not_echoed() {
    let mut vars = test_vars();
    vars.insert("SIGSTAGE_ADMIN_TOKEN".into(), "tok-hunter2".into());
    vars.insert("SIGSTAGE_LOG_FORMAT".into(), "xml".into());
    let output = sigstage(&["migrate"], &vars);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("SIGSTAGE_LOG_FORMAT"));
    assert!(!stderr(&output).contains("hunter2"));
}
