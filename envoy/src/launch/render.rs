use std::net::SocketAddr;

/// What the rendered Envoy configuration depends on.
#[derive(Debug, Clone)]
pub struct RenderInput<'a> {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub upstream_host: &'a str,
    pub upstream_port: u16,
    /// Path of the `.wasm` as Envoy should open it.
    pub wasm: &'a str,
    /// The plugin configuration (JSON text), passed to the filter verbatim.
    pub plugin_config: &'a str,
    /// Path prefixes that need nothing from the edge filter: their routes skip its VM
    /// (`--bypass`, validated by [`check_bypass_prefix`]).
    pub bypass: &'a [String],
}

/// A `--bypass` prefix: starts with `/`, printable ASCII without quotes, backslashes or `#`
/// (it is written into the YAML as a quoted string and matched as Envoy's route prefix).
pub fn check_bypass_prefix(prefix: &str) -> Result<(), String> {
    let printable = prefix
        .bytes()
        .all(|b| (b'!'..=b'~').contains(&b) && !matches!(b, b'"' | b'\\' | b'#'));
    if prefix.starts_with('/') && printable && prefix.len() <= 1024 {
        Ok(())
    } else {
        Err(format!(
            "--bypass: {prefix:?} is not a path prefix (it must start with '/', be printable \
             ASCII without quotes, backslashes or '#', at most 1024 bytes)"
        ))
    }
}

/// Routes for the bypassed prefixes, before the catch-all route: Envoy skips the edge filter
/// there (`FilterConfig { disabled: true }`), so those requests cost no VM call at all.
fn bypass_routes(bypass: &[String]) -> String {
    bypass
        .iter()
        .map(|prefix| {
            format!(
                "              - match: {{ prefix: \"{prefix}\" }}\n\
                 \x20               route: {{ cluster: origin, timeout: 15s }}\n\
                 \x20               # Needs nothing from the edge: no VM call.\n\
                 \x20               typed_per_filter_config:\n\
                 \x20                 envoy.filters.http.wasm:\n\
                 \x20                   \"@type\": type.googleapis.com/envoy.config.route.v3.FilterConfig\n\
                 \x20                   disabled: true\n"
            )
        })
        .collect()
}

/// Renders the Envoy configuration of the demo. `envoy/envoy.yaml` is this function's output
/// for the default options (a test keeps the two equal).
pub fn render_envoy_config(input: &RenderInput<'_>) -> String {
    let cluster_type = if input.upstream_host.parse::<std::net::IpAddr>().is_ok() {
        "STATIC"
    } else {
        "STRICT_DNS"
    };
    let plugin_config: String = input
        .plugin_config
        .trim_end()
        .lines()
        .map(|line| format!("                    {line}\n"))
        .collect();
    format!(
        r#"# Envoy configuration for the edge acceleration demo.
# Rendered by `edge-launch --print-config` with its default options; the launcher renders the
# same file with your options. Run from the repository root:
#   envoy -c envoy/envoy.yaml --concurrency 2
admin:
  address:
    socket_address: {{ address: {admin_ip}, port_value: {admin_port} }}
# The filter's stats carry their labels in the name (edge.requests.service.<s>.outcome.<o>);
# these tags turn them into Prometheus labels: edge_requests{{service="leads",outcome="hit_l1"}}.
stats_config:
  stats_tags:
  - tag_name: service
    regex: '^wasmcustom\.edge\..*?(\.service\.([^.]+))'
  - tag_name: outcome
    regex: '^wasmcustom\.edge\.requests.*?(\.outcome\.([^.]+))'
  - tag_name: stage
    regex: '^wasmcustom\.edge\.latency_ms.*?(\.stage\.([^.]+))'
  - tag_name: tier
    regex: '^wasmcustom\.edge\.cache(\.(l1|l2))\.'
static_resources:
  listeners:
  - name: edge
    address:
      socket_address: {{ address: {listen_ip}, port_value: {listen_port} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: edge
          # The client's own address (not X-Forwarded-For) is `source.address`, which the
          # management endpoints' allow-list checks; behind another proxy, set xff_num_trusted_hops.
          use_remote_address: true
          # `x_location_id` would reach CGI-style origins as `X-LOCATION-ID` while the filter
          # reads no tenant (or no forwarding header) in it: such requests get 400.
          common_http_protocol_options:
            headers_with_underscores_action: REJECT_REQUEST
          route_config:
            name: edge
            virtual_hosts:
            - name: origin
              domains: ["*"]
              routes:
{bypass_routes}              - match: {{ prefix: "/" }}
                route: {{ cluster: origin, timeout: 15s }}
          http_filters:
          # Decoding runs top to bottom, encoding bottom to top. The edge filter answers hits in
          # the client's coding itself (br/gzip bodies made once when an entry is stored, with
          # Vary: Accept-Encoding and weak validators per coding), and asks the origin for the
          # identity body of cacheable requests. The compressors encode only what the cache did
          # not: uncached responses without a validator (disable_on_etag_header keeps ETags
          # intact) and already-encoded responses pass through them untouched.
          - name: compressor-brotli
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor
              # A 206 is never encoded: its Content-Range counts the representation's bytes.
              response_direction_config:
                common_config:
                  min_content_length: 256
                disable_on_etag_header: true
                uncompressible_response_codes: [206]
              compressor_library:
                name: brotli
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.compression.brotli.compressor.v3.Brotli
          - name: compressor-gzip
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor
              # A 206 is never encoded: its Content-Range counts the representation's bytes.
              response_direction_config:
                common_config:
                  min_content_length: 256
                disable_on_etag_header: true
                uncompressible_response_codes: [206]
              compressor_library:
                name: gzip
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: edge
                root_id: edge
                # FAIL_RELOAD: if the VM ever dies, new requests get a fresh VM instead of
                # 503s (FAIL_CLOSED) or losing rate limits and dedup (FAIL_OPEN). Shared data
                # (L2, buckets, breakers) survives the reload.
                failure_policy: FAIL_RELOAD
                vm_config:
                  vm_id: edge
                  runtime: envoy.wasm.runtime.v8
                  code:
                    local:
                      filename: {wasm:?}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: |
{plugin_config}          # Holds each request until its body is complete, so the edge filter can answer
          # from the body (purge API, later webhook dedup) before anything reaches the origin:
          # Envoy gives no body to a filter that paused the headers.
          - name: envoy.filters.http.buffer
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
              max_request_bytes: 1048576
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: origin
    type: {cluster_type}
    connect_timeout: 2s
    load_assignment:
      cluster_name: origin
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: {upstream_host}, port_value: {upstream_port} }}
"#,
        admin_ip = input.admin.ip(),
        admin_port = input.admin.port(),
        listen_ip = input.listen.ip(),
        listen_port = input.listen.port(),
        wasm = input.wasm,
        upstream_host = input.upstream_host,
        upstream_port = input.upstream_port,
        bypass_routes = bypass_routes(input.bypass),
    )
}
