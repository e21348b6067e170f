#!/usr/bin/env bash
# Shared by benches/peers/*.sh (sourced after benches/wrk/common.sh, not run): installs and
# starts the peer caches — nginx (proxy_cache) and Varnish — as processes of our own on
# 127.0.0.1, pinned to the servers' CPU, stopped on exit with everything else common.sh started.

# --- Debian packages, installed when missing ------------------------------------------------
# The packages' own services must not start (they would listen on every address): where the
# machine has no policy-rc.d saying so, one is put in place for the install and removed after.
# The benches run processes of their own with their own configs.
apt_install() {
    local sudo_cmd=() policy=/usr/sbin/policy-rc.d placed=0 rc=0
    [[ "$(id -u)" == 0 ]] || sudo_cmd=(sudo)
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\n# placed by benches/peers/peers.sh during apt-get install\nexit 101\n' \
            | "${sudo_cmd[@]}" tee "$policy" >/dev/null && "${sudo_cmd[@]}" chmod 755 "$policy" && placed=1
    fi
    log "installing $* (apt-get)"
    local apt=("${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
    "${apt[@]}" install -y --no-install-recommends "$@" >"$OUT/apt.log" 2>&1 \
        || { "${apt[@]}" update >>"$OUT/apt.log" 2>&1 \
            && "${apt[@]}" install -y --no-install-recommends "$@" >>"$OUT/apt.log" 2>&1; } \
        || rc=$?
    [[ "$placed" == 0 ]] || "${sudo_cmd[@]}" rm -f "$policy"
    [[ "$rc" == 0 ]] || die "apt-get install $* failed (see $OUT/apt.log)"
}
need=()
command -v varnishd >/dev/null || [[ -x /usr/sbin/varnishd ]] || need+=(varnish)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx-light)
[[ "${#need[@]}" == 0 ]] || apt_install "${need[@]}"
VARNISHD="$(command -v varnishd || echo /usr/sbin/varnishd)"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

# A port that was free a moment ago (nginx and varnishd cannot report a port the kernel picked);
# the start helpers retry with another one if the bind loses a race.
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# wait_http PID PORT NAME LOG: waits until PORT answers HTTP; fails if PID exits first.
wait_http() {
    local pid="$1" port="$2" name="$3" logf="$4"
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    tail -20 "$logf" >&2
    die "$name did not answer on 127.0.0.1:$port (see $logf)"
}

PEER_DIR="$(mktemp -d /tmp/edge-peers.XXXXXX)"
chmod 755 "$PEER_DIR" # varnishd's unprivileged child opens its working directory below it
PEER_DIRS+=("$PEER_DIR")

# start_nginx NAME WORKERS EXTRA: nginx with a proxy_cache in front of the origin; EXTRA is
# inserted in its location block. Sets NGINX_PORT.
start_nginx() {
    local name="$1" workers="$2" extra="$3" dir="$PEER_DIR/$1" attempt pid
    mkdir -p "$dir/cache" "$dir/temp"
    for attempt in 1 2 3; do
        NGINX_PORT="$(free_port)"
        cat >"$dir/nginx.conf" <<EOF
# Rendered by benches/peers: nginx $name in front of the demo origin.
worker_processes $workers;
daemon off;
# Root, so the workers can write the cache below this temporary directory.
user root;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/temp/body;
    proxy_temp_path $dir/temp/proxy;
    proxy_cache_path $dir/cache levels=1:2 keys_zone=edge:32m max_size=1g inactive=60m use_temp_path=off;
    upstream origin {
        server 127.0.0.1:$ORIGIN_PORT;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache edge;
            add_header X-Cache-Status \$upstream_cache_status;
$extra
        }
    }
}
EOF
        "$NGINX" -t -q -p "$dir" -c "$dir/nginx.conf" >"$dir/check.log" 2>&1 \
            || { cat "$dir/check.log" >&2; die "nginx $name: bad config ($dir/nginx.conf)"; }
        taskset -c "$ENVOY_CPU" "$NGINX" -p "$dir" -c "$dir/nginx.conf" >"$OUT/$name.log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        if wait_http "$pid" "$NGINX_PORT" "nginx $name" "$dir/error.log"; then
            log "nginx $name ($workers worker(s), CPU $ENVOY_CPU) on 127.0.0.1:$NGINX_PORT"
            return 0
        fi
        log "nginx $name exited (attempt $attempt; port taken?): $(tail -1 "$dir/error.log" 2>/dev/null)"
    done
    die "nginx $name did not start (see $dir/error.log)"
}

# start_varnish NAME: varnishd with its default settings (default VCL from -b, default storage,
# default thread pools), its CLI off. Sets VARNISH_PORT and VARNISH_DIR (for varnishstat -n).
start_varnish() {
    local name="$1" attempt pid
    VARNISH_DIR="$PEER_DIR/$name"
    for attempt in 1 2 3; do
        VARNISH_PORT="$(free_port)"
        rm -rf "$VARNISH_DIR"
        taskset -c "$ENVOY_CPU" "$VARNISHD" -F -n "$VARNISH_DIR" -a "127.0.0.1:$VARNISH_PORT" \
            -b "127.0.0.1:$ORIGIN_PORT" -T none >"$OUT/$name.log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        if wait_http "$pid" "$VARNISH_PORT" "varnish $name" "$OUT/$name.log"; then
            log "varnish $name ($("$VARNISHD" -V 2>&1 | head -1 | sed 's/varnishd (//; s/ revision.*//'), CPU $ENVOY_CPU) on 127.0.0.1:$VARNISH_PORT"
            return 0
        fi
        log "varnish $name exited (attempt $attempt; port taken?): $(tail -1 "$OUT/$name.log")"
    done
    die "varnish $name did not start (see $OUT/$name.log)"
}
