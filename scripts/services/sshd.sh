#!/usr/bin/env bash
# Makes sure the OpenSSH server binary that the SSH backend's tests use is
# installed. The tests start and stop their own sshd processes on loopback
# addresses (see remote/ssh/sshd_test.go), so nothing is started here and
# no system service is touched.
# Usage: scripts/services/sshd.sh
set -euo pipefail

find_sshd() {
	command -v sshd 2>/dev/null && return 0
	for p in /usr/sbin/sshd /usr/local/sbin/sshd; do
		[ -x "$p" ] && { echo "$p"; return 0; }
	done
	return 1
}

if p=$(find_sshd); then
	echo "sshd.sh: OpenSSH server found at $p"
	exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
	echo "sshd.sh: installing openssh-server"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends openssh-server >/dev/null
	p=$(find_sshd) || { echo "sshd.sh: openssh-server installed but sshd not found" >&2; exit 1; }
	echo "sshd.sh: OpenSSH server installed at $p"
	exit 0
fi

echo "sshd.sh: the OpenSSH server (sshd) is not installed; install the openssh-server package" >&2
echo "sshd.sh: without it the SSH backend tests skip, or fail when RUSTYPIPE_TEST_SSH=1" >&2
exit 1
