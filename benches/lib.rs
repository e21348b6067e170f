//! Shared inputs for the benches.

/// A configuration with `count` services matched by path prefix, the shape operators write.
pub fn config_with_services(count: usize) -> String {
    let services: Vec<String> = (0..count)
        .map(|i| {
            format!(
                r#"{{"name": "service-{i}", "match": {{"path_prefix": "/api/v1/s{i}/", "methods": ["GET", "HEAD"]}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"services": [{}], "default_service": {{"name": "default"}}}}"#,
        services.join(",")
    )
}
