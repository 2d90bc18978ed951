#!/usr/bin/env bash
# Starts a Docker engine for the Docker backend's tests (remote/docker) and
# returns once its API socket answers.
#
#   - When the socket already answers, nothing is started.
#   - When dockerd is missing, Debian's docker.io package is installed
#     (needs root and apt-get).
#   - dockerd runs in the background, logging to $DOCKERD_LOG, with its pid
#     in $DOCKERD_PIDFILE; stop it with: kill "$(cat "$DOCKERD_PIDFILE")".
#   - The wait for the socket is bounded by $DOCKERD_WAIT seconds.
#   - The Docker backend's tests build their image from a static busybox:
#     Debian's busybox-static is installed too when apt-get is available and
#     it is not.
#
# Environment (all optional):
#   DOCKER_HOST      unix:///path/to.sock to serve and probe (default: the
#                    standard /var/run/docker.sock)
#   DOCKERD_LOG      log file            (default: /tmp/rustypipe-dockerd.log)
#   DOCKERD_PIDFILE  pid file            (default: /tmp/rustypipe-dockerd.pid)
#   DOCKERD_WAIT     seconds to wait     (default: 60)
#   DOCKERD_FLAGS    extra dockerd flags (e.g. --storage-driver=vfs)
#
# Usage: scripts/services/dockerd.sh
set -euo pipefail

log=${DOCKERD_LOG:-/tmp/rustypipe-dockerd.log}
pidfile=${DOCKERD_PIDFILE:-/tmp/rustypipe-dockerd.pid}
wait_s=${DOCKERD_WAIT:-60}

host=${DOCKER_HOST:-unix:///var/run/docker.sock}
case $host in
unix://*) sock=${host#unix://} ;;
*)
	echo "dockerd.sh: DOCKER_HOST=$host is not a unix socket; start that engine yourself" >&2
	exit 1
	;;
esac

# answers reports whether the engine's API answers on $sock, with the docker
# CLI when it is installed, else with curl; a ping is all that is asked.
answers() {
	[ -S "$sock" ] || return 1
	if command -v docker >/dev/null 2>&1; then
		DOCKER_HOST="unix://$sock" docker version --format '{{.Server.Version}}' >/dev/null 2>&1
	elif command -v curl >/dev/null 2>&1; then
		curl -fsS --max-time 5 --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1
	else
		return 0 # a socket but nothing to ask it with: assume it answers
	fi
}

# apt_install installs Debian packages, updating the package lists once.
updated=
apt_install() {
	export DEBIAN_FRONTEND=noninteractive
	[ -n "$updated" ] || apt-get update -qq
	updated=1
	apt-get install -y -qq "$@" >/dev/null
}

if command -v apt-get >/dev/null 2>&1 && ! dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then
	echo "dockerd.sh: installing busybox-static (for the test image)"
	apt_install busybox-static
fi

if answers; then
	echo "dockerd.sh: engine already answers on $sock"
	exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "dockerd.sh: dockerd is not installed and apt-get is not available" >&2
		exit 1
	fi
	echo "dockerd.sh: installing docker.io"
	apt_install docker.io
fi

pid=$(cat "$pidfile" 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
	echo "dockerd.sh: dockerd (pid $pid) runs but does not answer yet; waiting"
else
	echo "dockerd.sh: starting dockerd (log $log, pid file $pidfile)"
	mkdir -p "$(dirname "$sock")"
	rm -f "$pidfile"
	# dockerd writes its own pid file once it has started.
	# shellcheck disable=SC2086 # DOCKERD_FLAGS is a list of flags
	nohup dockerd --host "unix://$sock" --pidfile "$pidfile" ${DOCKERD_FLAGS:-} >"$log" 2>&1 &
	pid=$!
fi

for ((i = 0; i < wait_s * 2; i++)); do
	if answers; then
		echo "dockerd.sh: engine answers on $sock"
		exit 0
	fi
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "dockerd.sh: dockerd exited; last lines of $log:" >&2
		tail -n 20 "$log" >&2
		exit 1
	fi
	sleep 0.5
done
echo "dockerd.sh: the engine did not answer on $sock within ${wait_s}s; last lines of $log:" >&2
tail -n 20 "$log" >&2
exit 1
