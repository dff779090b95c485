"""What an EC2 instance runs at first boot: an AWS prelude, then the kernel's bootstrap.

The kernel's user data (a shell script) expects the host to be called by its node name, as Slurm
knows it; an EC2 instance boots as ``ip-10-0-1-4``. One ``RunInstances`` launches a batch with
one user data, so the prelude carries the batch's names (:func:`corral_aws.names.runs`) and asks
the instance metadata service (IMDSv2: a session token first) for the instance's launch index:
the instance with index *i* takes the *i*-th name as its hostname, maps it to its private
address in ``/etc/hosts``, then runs the kernel's script as cloud-init would have run it.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Sequence

from corral_aws.names import runs

__all__ = ["IMDS_URL", "user_data"]

IMDS_URL = "http://169.254.169.254/latest"

_PRELUDE = """#!/bin/sh
# Corral on EC2: name this host after its Name tag (IMDSv2), then run Corral's bootstrap.
imds={imds}
meta() {{
  i=0
  while [ $i -lt 60 ]; do
    token=$(curl -fsS --noproxy '*' --max-time 5 -X PUT \\
      -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$imds/api/token") &&
    curl -fsS --noproxy '*' --max-time 5 -H "X-aws-ec2-metadata-token: $token" \\
      "$imds/meta-data/$1" && return 0
    i=$((i + 1)); sleep 1
  done
  echo "corral: the instance metadata service did not answer $1" >&2
  return 1
}}
index=$(meta ami-launch-index) || exit 1
address=$(meta local-ipv4) || exit 1
name=
while read -r prefix width first last; do
  count=$((last - first + 1))
  if [ "$index" -lt "$count" ]; then
    if [ "$width" -eq 0 ]; then name=$prefix
    else name=$prefix$(printf "%0${{width}}d" $((first + index))); fi
    break
  fi
  index=$((index - count))
done <<'CORRAL_NAMES'
{runs}CORRAL_NAMES
case "$name" in
  *[!A-Za-z0-9.-]*|"") echo "corral: no name for launch index $index" >&2; exit 1 ;;
esac
hostname "$name"
echo "$name" > /etc/hostname
grep -q "^$address[[:space:]]$name\\$" /etc/hosts 2>/dev/null ||
  printf '%s\\t%s\\n' "$address" "$name" >> /etc/hosts
{nat}script=$(mktemp /var/tmp/corral-bootstrap.XXXXXX)
cat > "$script" <<'{marker}'
{script}
{marker}
chmod 0700 "$script"
exec /bin/sh "$script"
"""


_NAT = """# the controller is the NAT of its network's private subnets (controller-nat), now and at
# every boot
mkdir -p /etc/corral/boot.d
cat > /etc/corral/boot.d/10-nat <<'CORRAL_NAT_END'
#!/bin/sh
# Written by Corral: masquerade {cidr} out of the default route's interface.
sysctl -qw net.ipv4.ip_forward=1
iface=$(ip route show default | awk '{{print $5; exit}}')
iptables -t nat -C POSTROUTING -s {cidr} -o "$iface" -j MASQUERADE 2>/dev/null ||
  iptables -t nat -A POSTROUTING -s {cidr} -o "$iface" -j MASQUERADE
CORRAL_NAT_END
chmod 0755 /etc/corral/boot.d/10-nat
/etc/corral/boot.d/10-nat || echo "corral: could not set up NAT for {cidr}" >&2
"""


def user_data(script: str, names: Sequence[str], *, nat_for: str = "") -> str:
    """The user data of a batch of instances called ``names`` (in launch-index order) whose
    bootstrap is ``script`` (empty stays empty). With ``nat_for`` (a CIDR), the instance
    masquerades that network's traffic: a controller on a ``controller-nat`` network."""
    if not script:
        return ""
    marker = "CORRAL_BOOTSTRAP_END"
    while marker in script:
        marker += "_"
    # a quoted here-document: the script is written as it is, nothing expanded
    return _PRELUDE.format(
        imds=shlex.quote(IMDS_URL),
        runs=runs(names),
        nat=_NAT.format(cidr=str(ipaddress.ip_network(nat_for))) if nat_for else "",
        script=script.rstrip("\n"),
        marker=marker,
    )
