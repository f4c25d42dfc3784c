#!/bin/sh
# deploy/etcd/rbac.sh: an etcd role and user for the electors of one election, allowed
# nothing but that election.
#
# Usage:
#   ETCDCTL_ENDPOINTS=https://10.0.0.11:2379 ETCDCTL_CACERT=ca.pem ETCDCTL_USER=root \
#     ELECTOR_ETCD_PASSWORD=... deploy/etcd/rbac.sh [KEY] [USER]
#
#   KEY   the election key, as the electors' --key (default /iotex-server)
#   USER  the etcd user the electors log in as (default elector)
#
# The new user's password comes from ELECTOR_ETCD_PASSWORD or, if that is unset, from the
# first line of standard input; it is never put on a command line. An existing user keeps its
# password. etcdctl takes its endpoint and admin credentials from its own environment
# (ETCDCTL_ENDPOINTS, ETCDCTL_CACERT, ETCDCTL_CERT, ETCDCTL_KEY, ETCDCTL_USER=root or
# root:password). Running it again is harmless.
#
# What the role allows: read and write on the key range with prefix KEY, which holds
#   KEY/<lease id hex>              the candidates (Go concurrency.Election layout; etcdctl
#                                   elect and the Go elector use the same keys)
#   KEY.elector/handover-record     written by a leader that handed over cleanly
#   KEY.elector/handover-request    written by `elector handover`
#   KEY.elector/excluded/<value>    written by `elector exclude`, deleted by `elector include`
# and the watch over prefix KEY that the elector keeps on both. Leases need no permission
# (revoking one needs write access to its keys, which the role gives). Any other key that
# begins with KEY (KEY2/..., KEY-test/...) falls in the range too: give elections keys that
# are not prefixes of one another.
#
# It does not turn authentication on. Once per cluster, as an administrator:
#   etcdctl user add root && etcdctl auth enable
#
# Then give the electors the user: ELECTOR_ETCD_USER=elector and the password in a file only
# the elector can read (ELECTOR_ETCD_PASSWORD_FILE=/etc/elector/etcd-password), or in
# ELECTOR_ETCD_PASSWORD from a Kubernetes Secret.
set -eu

key="${1:-/iotex-server}"
user="${2:-elector}"

case "$key" in
  "" | */) echo "rbac.sh: the key must be non-empty and not end with '/': '$key'" >&2; exit 2 ;;
esac
command -v etcdctl >/dev/null 2>&1 || { echo "rbac.sh: etcdctl not found" >&2; exit 1; }
export ETCDCTL_API=3

# A role name from the key: /iotex-server -> elector-iotex-server.
role="elector-$(printf '%s' "$key" | sed 's#^/*##; s#[^A-Za-z0-9_.-]#-#g')"

if etcdctl role get "$role" >/dev/null 2>&1; then
  echo "role $role exists; granting its permissions again"
else
  etcdctl role add "$role"
fi
etcdctl role grant-permission "$role" readwrite --prefix=true "$key"

if etcdctl user get "$user" >/dev/null 2>&1; then
  echo "user $user exists; its password is left as it is"
else
  if [ -n "${ELECTOR_ETCD_PASSWORD:-}" ]; then
    password="$ELECTOR_ETCD_PASSWORD"
  else
    IFS= read -r password || true
  fi
  [ -n "$password" ] || { echo "rbac.sh: no password (ELECTOR_ETCD_PASSWORD or stdin)" >&2; exit 2; }
  printf '%s\n' "$password" | etcdctl user add "$user" --interactive=false
fi
etcdctl user grant-role "$user" "$role"

echo "etcd user $user may now take part in election $key (role $role: readwrite on prefix $key)"
