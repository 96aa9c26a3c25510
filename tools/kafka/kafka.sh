#!/usr/bin/env bash
# A local single-node Apache Kafka (KRaft, broker+controller in one JVM) without Docker.
#
#   kafka.sh up     fetch jars (once), format storage (once), start, wait until it answers metadata
#   kafka.sh down   stop the broker started by `up`, by its own pid; leaves no process behind
#   kafka.sh status print whether it runs
#
# Settings (environment): KAFKA_VERSION (4.3.1), KAFKA_PORT (19092: when it is not set and 19092 is held
# by a process that is not this checkout's broker, `up` takes two free ports, says which, and remembers them in
# KAFKA_CACHE_DIR/port until `down`), KAFKA_CONTROLLER_PORT (port+1),
# KAFKA_DATA_DIR (.cache/kafka/run-<port>), KAFKA_CACHE_DIR (.cache/kafka), KAFKA_HEAP (512m),
# KAFKA_START_TIMEOUT (90 seconds), PYTHON (a python with kafka-python, for the readiness probe),
# KAFKA_EXTRA_CONFIG (a properties file whose settings replace or extend the generated ones, e.g. an extra
# TLS/SASL listener; the PLAINTEXT listener on KAFKA_PORT must stay, the readiness probe uses it).
# The last line of `up` is KAFKA_BOOTSTRAP_SERVERS=host:port, so `eval "$(kafka.sh up | tail -1)"` works.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
version="${KAFKA_VERSION:-4.3.1}"
host=127.0.0.1
cache_dir="${KAFKA_CACHE_DIR:-$repo/.cache/kafka}"
libs="$cache_dir/libs-$version"
port_file="$cache_dir/port"  # the ports `up` chose when the default was taken: "<port> <controller port>"
heap="${KAFKA_HEAP:-512m}"
timeout="${KAFKA_START_TIMEOUT:-90}"
python="${PYTHON:-python3}"
chosen_ports=0  # 1: the ports come from port_file, not from the settings
if [[ -n "${KAFKA_PORT:-}" ]]; then
  port="$KAFKA_PORT"
elif [[ -z "${KAFKA_CONTROLLER_PORT:-}" && -f "$port_file" ]] && read -r port controller_port < "$port_file" \
    && [[ "$port" =~ ^[0-9]+$ && "$controller_port" =~ ^[0-9]+$ ]]; then
  chosen_ports=1
else
  port=19092
fi
[[ $chosen_ports -eq 1 ]] || controller_port="${KAFKA_CONTROLLER_PORT:-$((port + 1))}"

set_paths() {
  data_dir="${KAFKA_DATA_DIR:-$cache_dir/run-$port}"
  pid_file="$data_dir/kafka.pid"
  log_file="$data_dir/kafka.log"
  bootstrap="$host:$port"
}
set_paths

die() { echo "kafka: $*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null; }

is_our_broker() {
  # True if pid $1 is the kafka.Kafka JVM started on this data dir's server.properties: a pid reused by
  # another process, even another broker (of another KAFKA_PORT), is not ours and must not be stopped.
  local args; args="$(tr '\0' '\n' < "/proc/$1/cmdline" 2>/dev/null)" || return 1
  grep -qxF kafka.Kafka <<<"$args" && grep -qxF "$data_dir/server.properties" <<<"$args"
}

running_pid() {
  # The pid of our broker if it is alive, else nothing (a stale pid file is removed).
  [[ -f "$pid_file" ]] || return 0
  local pid; pid="$(cat "$pid_file")"
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && is_our_broker "$pid"; then
    echo "$pid"
  else
    rm -f "$pid_file"
  fi
}

fetch_jars() {
  [[ -f "$libs/.complete" ]] && return 0
  command -v mvn >/dev/null || die "mvn not found: install Maven (apt-get install maven) or set KAFKA_BOOTSTRAP_SERVERS to an existing broker"
  echo "kafka: fetching Apache Kafka $version jars from Maven Central into $libs" >&2
  rm -rf "$libs"; mkdir -p "$libs"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
      -Dkafka.version="$version" -DoutputDirectory="$libs" >&2 \
    || die "could not fetch Kafka $version jars with Maven (is Maven Central reachable?)"
  touch "$libs/.complete"
}

write_config() {
  mkdir -p "$data_dir/logs"
  cat > "$data_dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$host:$controller_port
listeners=PLAINTEXT://$host:$port,CONTROLLER://$host:$controller_port
advertised.listeners=PLAINTEXT://$host:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data_dir/logs
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
PROPS
  if [[ -n "${KAFKA_EXTRA_CONFIG:-}" ]]; then
    [[ -r "$KAFKA_EXTRA_CONFIG" ]] || die "KAFKA_EXTRA_CONFIG=$KAFKA_EXTRA_CONFIG is not a readable file"
    # A setting given there replaces the generated one.
    awk -F= 'NR == FNR { if ($0 ~ /^[A-Za-z0-9_.-]+=/) given[$1] = 1; next } !($1 in given)' \
      "$KAFKA_EXTRA_CONFIG" "$data_dir/server.properties" > "$data_dir/server.properties.new"
    mv "$data_dir/server.properties.new" "$data_dir/server.properties"
    cat "$KAFKA_EXTRA_CONFIG" >> "$data_dir/server.properties"
  fi
  cat > "$data_dir/log4j2.properties" <<PROPS
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = $data_dir/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
PROPS
}

wait_ready() {
  "$python" - "$bootstrap" "$timeout" "$1" <<'PY'
import os, sys, time
bootstrap, timeout, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
from kafka import KafkaAdminClient
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(3)
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        admin.describe_cluster()
        admin.close()
        sys.exit(0)
    except Exception:
        time.sleep(0.5)
sys.exit(2)
PY
}

up() {
  local pid; pid="$(running_pid)"
  if [[ -n "$pid" ]]; then
    echo "kafka: already running (pid $pid) on $bootstrap" >&2
    echo "KAFKA_BOOTSTRAP_SERVERS=$bootstrap"
    return 0
  fi
  command -v java >/dev/null || die "java not found: install Java 17+ (apt-get install openjdk-17-jre-headless) or set KAFKA_BOOTSTRAP_SERVERS to an existing broker"
  "$python" -c "import kafka" 2>/dev/null || die "python '$python' lacks kafka-python: run 'make venv' or set PYTHON"
  if [[ -z "${KAFKA_PORT:-}" && -z "${KAFKA_CONTROLLER_PORT:-}" ]] && { port_open "$port" || port_open "$controller_port"; }; then
    choose_free_ports
  fi
  for p in "$port" "$controller_port"; do
    port_open "$p" && die "port $p on $host is already in use by another process: stop it or choose another with KAFKA_PORT=<port>"
  done
  fetch_jars
  write_config
  local cp="$libs/*"
  if [[ ! -f "$data_dir/logs/meta.properties" ]]; then
    java -cp "$cp" -Dlog4j2.configurationFile="$data_dir/log4j2.properties" kafka.tools.StorageTool format \
      -t "$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)" \
      -c "$data_dir/server.properties" --standalone --ignore-formatted >"$data_dir/format.log" 2>&1 \
      || die "could not format storage in $data_dir/logs (see $data_dir/format.log)"
  fi
  echo "kafka: starting Apache Kafka $version on $bootstrap (data $data_dir)" >&2
  setsid nohup java -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$data_dir/log4j2.properties" \
    -cp "$cp" kafka.Kafka "$data_dir/server.properties" >"$log_file" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" > "$pid_file"
  local rc=0
  wait_ready "$pid" || rc=$?
  if [[ $rc -ne 0 ]]; then
    if [[ $rc -eq 3 ]]; then
      rm -f "$pid_file"
      die "broker exited during startup; last lines of $data_dir/server.log: $(tail -3 "$data_dir/server.log" "$log_file" 2>/dev/null | tr '\n' ' ')"
    fi
    stop_pid "$pid"
    die "broker did not answer metadata requests on $bootstrap within ${timeout}s (see $data_dir/server.log; raise KAFKA_START_TIMEOUT on slow machines)"
  fi
  echo "kafka: ready (pid $pid)" >&2
  echo "KAFKA_BOOTSTRAP_SERVERS=$bootstrap"
}

choose_free_ports() {
  # The default ports are held by another process (another checkout's broker, say): take two free ones below
  # the ephemeral range (so no client connection takes them meanwhile) and remember them for status and down.
  local taken="$port" ports
  ports="$("$python" - <<'PY'
import random, socket
found = []
for candidate in random.sample(range(20000, 32000), 1000):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
    found.append(candidate)
    if len(found) == 2:
        break
print(*found)
PY
)" || die "could not look for free ports"
  read -r port controller_port <<<"$ports"
  [[ -n "$controller_port" ]] || die "no free ports found on $host between 20000 and 32000"
  set_paths
  mkdir -p "$cache_dir"
  echo "$port $controller_port" > "$port_file"
  chosen_ports=1
  echo "kafka: port $taken on $host is held by a process that is not this checkout's broker; using $bootstrap (controller port $controller_port) until 'kafka.sh down'" >&2
}

stop_pid() {
  local pid="$1"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "kafka: broker did not stop within 30s, killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$pid_file"
}

down() {
  local pid; pid="$(running_pid)"
  if [[ -z "$pid" ]]; then
    echo "kafka: not running on $bootstrap" >&2
    return 0
  fi
  stop_pid "$pid"
  echo "kafka: stopped (pid $pid)" >&2
  if [[ $chosen_ports -eq 1 ]]; then
    # Chosen ports are not kept: the next `up` tries the default again, so this data dir is not reused.
    rm -f "$port_file"
    [[ -n "${KAFKA_DATA_DIR:-}" ]] || rm -rf "$data_dir"
  fi
}

status() {
  local pid; pid="$(running_pid)"
  if [[ -n "$pid" ]]; then echo "kafka: running (pid $pid) on $bootstrap"; else echo "kafka: not running"; return 1; fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
