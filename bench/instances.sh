# Several caravel processes for bench/engines.sh (sourced by it, bash; uses its BIN and TMP):
# named servers started and stopped together, nginx in front of two of them with the shipped
# example's upstream block, and the billing leader's takeover after a kill -9.
# Every process binds 127.0.0.1 and is stopped by its PID.

declare -A PID URL # server name -> its PID, its http://127.0.0.1:PORT

# server NAME [VAR=VALUE...]: build/caravel (BIN) in TMP/NAME (its log: TMP/NAME/caravel.log),
# on SQLite in that folder unless DATABASE_URL is given.
server () {
  local name=$1; shift
  mkdir -p "$TMP/$name"
  caravel_start "$BIN" "$TMP/$name" "$@"
  PID[$name]=$CARAVEL_PID
  URL[$name]=$CARAVEL_URL
  CARAVEL_PID= # stopped by servers_stop, not by caravel_stop
}

# server_kill9 NAME: SIGKILL, as a crash would (disowned first: no "Killed" line from bash).
server_kill9 () {
  disown "${PID[$1]}" 2>/dev/null || true
  kill -KILL "${PID[$1]}"
  unset "PID[$1]"
}

# servers_stop: SIGTERM to every server still running, then waits for them.
servers_stop () {
  local p
  for p in "${PID[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PID[@]}"; do wait "$p" 2>/dev/null || true; done
  PID=()
}

# nginx_instances A B: nginx on a free port in front of servers A and B with
# deploy/nginx-instances.conf's upstream block and location (or NGINX_INSTANCES_CONF's), over
# plain HTTP (the proxy hop is measured, not TLS); sets NGINX_PID, NGINX_URL. nginx_stop (bench/lib.sh) stops it.
nginx_instances () {
  local dir=$TMP/nginx port upstream location _ conf=${NGINX_INSTANCES_CONF:-deploy/nginx-instances.conf}
  port=$(free_port)
  mkdir -p "$dir"
  upstream=$(awk '/^upstream caravel \{/,/^\}/' "$conf" |
    sed -e "s/127.0.0.1:3001 /${URL[$1]#http://} /" -e "s/127.0.0.1:3002 /${URL[$2]#http://} /")
  location=$(awk '/^    location \/ \{/,/^    \}/' "$conf")
  cat >"$dir/nginx.conf" <<CONF
daemon off; worker_processes 1; pid $dir/nginx.pid; error_log $dir/error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir;
  uwsgi_temp_path $dir; scgi_temp_path $dir;
$upstream
  server {
    listen 127.0.0.1:$port;
    server_name localhost;
$location
  }
}
CONF
  nginx -e stderr -p "$dir" -c "$dir/nginx.conf" &
  NGINX_PID=$!
  NGINX_URL="http://127.0.0.1:$port"
  for _ in $(seq 1 50); do curl -s -o /dev/null "$NGINX_URL/healthz" && break; sleep 0.1; done
}

# wait_log NAME PATTERN SECONDS -> milliseconds until TMP/NAME/caravel.log has a line matching
# PATTERN (grep -E), polled every 20 ms from the call; fails after SECONDS.
wait_log () {
  local log=$TMP/$1/caravel.log t0 end
  t0=$(date +%s%N)
  end=$((t0 + $3 * 1000000000))
  until grep -Eq "$2" "$log"; do
    [ "$(date +%s%N)" -lt "$end" ] || { echo "no '$2' in $1's log within $3 s" >&2; return 1; }
    sleep 0.02
  done
  echo $((($(date +%s%N) - t0) / 1000000))
}

# lease_takeovers DB_URL ROUNDS -> the takeover times in ms, space-separated. Instances with
# billing on (NWC_URL: a wallet behind a closed 127.0.0.1 port; with no tenant to bill, the
# lease is all that runs) and the default BILLING_LEASE_TTL: the first becomes the leader; then
# ROUNDS times a new standby is started, the leader is killed with SIGKILL 2-4 s later (a
# random point of its renewal cycle), and the time to the standby's "is the leader now" log line
# is measured. The standby reads the lease every second; it takes over when the dead leader's
# last renewal has expired.
lease_takeovers () {
  local db=$1 rounds=$2 wallet_pk client_sk nwc leader standby i times=""
  read -r _ wallet_pk < <(tokens key)
  read -r client_sk _ < <(tokens key)
  nwc="nostr+walletconnect://$wallet_pk?relay=ws://127.0.0.1:$(free_port)&secret=$client_sk"
  lease_server () { server "$1" DATABASE_URL="$db" NWC_URL="$nwc" LOG_LEVEL=info ROBOT_SECRET="$ROBOT_SK"; }
  lease_server lease0
  wait_log lease0 'lease billing: .* is the leader now' 30 >/dev/null
  leader=lease0
  for i in $(seq 1 "$rounds"); do
    standby=lease$i
    lease_server "$standby"
    sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 2 + 2 * r / 32768 }')"
    server_kill9 "$leader"
    times="$times $(wait_log "$standby" 'lease billing: .* is the leader now' 60)"
    leader=$standby
  done
  echo "${times# }"
}
