#!/usr/bin/env bash
# A real Slurm 22.05 cluster on this machine, reachable over SSH, for Corral's tests and README.
#
#   bash contrib/lab/slurm.sh up            # install, start, wait; prints CORRAL_LAB_* KEY=VALUE lines
#   bash contrib/lab/slurm.sh down          # stop daemons, delete namespaces and bridge
#   bash contrib/lab/slurm.sh status        # exit 0 when healthy, else says what is down
#   bash contrib/lab/slurm.sh restart-sshd  # drop SSH connections to the login host, serve again
#   bash contrib/lab/slurm.sh rekey         # new host key for the login host's sshd
#   bash contrib/lab/slurm.sh exec CMD...   # CMD on the controller, as root, with SLURM_CONF set
#   bash contrib/lab/slurm.sh logs          # tails of the daemon logs
#
# Every "host" is a network namespace (crl-<host>) with a veth on the bridge crlbr0, plus a UTS
# namespace per daemon so that `hostname` says n1, n2, ctl or jump: slurmctld insists that its
# hostname matches SlurmctldHost, and jobs print the node they ran on. The filesystem is shared,
# so /home, the config, the logs and the one munged socket are the same for every host.
# See contrib/lab/README.md. Runs as root on Debian 12; no systemd needed.
set -euo pipefail
umask 022 # sshd refuses an AuthorizedKeysCommand in a group- or world-writable place

readonly LAB_ETC=/etc/corral-lab
readonly SLURM_DIR=$LAB_ETC/slurm
readonly LAB_SLURM_CONF=$SLURM_DIR/slurm.conf
readonly SSH_DIR=$LAB_ETC/ssh
readonly KEYS_COMMAND=$SSH_DIR/authorized-keys
readonly PLATFORM_URL_FILE=$LAB_ETC/platform-url
readonly STATE=/var/lib/corral-lab
readonly LOGS=/var/log/corral-lab
readonly RUN=/run/corral-lab
readonly MUNGE_SOCKET=$RUN/munge/munge.socket
readonly MUNGE_PID=$RUN/munge/munged.pid
readonly MUNGE_KEY=/etc/munge/munge.key

readonly BRIDGE=crlbr0
readonly HOST_ADDRESS=10.77.0.1
readonly -A ADDRESS=([ctl]=10.77.0.10 [n1]=10.77.0.11 [n2]=10.77.0.12 [jump]=10.77.0.5)
readonly HOSTS=(ctl n1 n2 jump)
readonly NODES=(n1 n2)
readonly SSH_HOSTS=(ctl jump)
readonly LOGIN=ctl
readonly SSH_PORT=22
readonly LAB_USERS=(alice bob)
readonly PARTITIONS=(debug long)
readonly CTLD_PORT=6917
readonly SLURMD_PORT=6918
# Bounded waits, in seconds (overridable for slow machines).
readonly SLURM_TIMEOUT=${CORRAL_LAB_SLURM_TIMEOUT:-120}
readonly SSHD_TIMEOUT=${CORRAL_LAB_SSHD_TIMEOUT:-20}

# Every Slurm command of this script (and, through in_host, every daemon) reads the lab config.
export SLURM_CONF=$LAB_SLURM_CONF
export DEBIAN_FRONTEND=noninteractive

log() { echo "slurm-lab: $*" >&2; }
die() { log "error: $*"; exit 1; }

require_root() {
  [[ $(id -u) == 0 ]] || die "must run as root (it creates network namespaces, users and daemons)"
}

# ---------------------------------------------------------------------------------------------
# Packages

# Installs the Debian packages whose commands are missing. Individual packages without
# recommends rather than the slurm-wlm metapackage, which drags in ~50 plugin packages (HDF5,
# ROCm, InfluxDB...) that the lab does not use.
install_packages() {
  local -A package_of=(
    [slurmctld]=slurmctld [slurmd]=slurmd [sinfo]=slurm-client [munged]=munge
    [/usr/sbin/sshd]=openssh-server [ssh-keygen]=openssh-client [ip]=iproute2 [curl]=curl
  )
  local command missing=()
  for command in "${!package_of[@]}"; do
    command -v "$command" >/dev/null 2>&1 || missing+=("${package_of[$command]}")
  done
  [[ ${#missing[@]} -gt 0 ]] || return 0
  log "installing ${missing[*]} from Debian"
  # Package scripts would start munge, sshd (on the host's port 22) and slurmctld with Debian's
  # defaults; a policy-rc.d that says "no" keeps them from starting, as in Docker images.
  local policy=/usr/sbin/policy-rc.d ours=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# Written by corral contrib/lab/slurm.sh during apt-get install.\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    ours=1
  fi
  local status=0
  { apt-get update -q && apt-get install -y -q --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"; } >&2 \
    || status=$?
  if [[ $ours == 1 ]]; then rm -f "$policy"; fi
  [[ $status == 0 ]] || die "apt-get install ${missing[*]} failed (exit $status)"
}

# ---------------------------------------------------------------------------------------------
# Files

# Writes stdin to DEST (mode MODE) unless DEST already has that content. Returns 0 when it
# changed DEST, 1 when not, so callers can restart what reads it.
write_if_changed() {
  local dest=$1 mode=$2 tmp
  tmp=$(mktemp "$dest.XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  if [[ -f $dest ]] && cmp -s "$tmp" "$dest"; then
    rm -f "$tmp"
    chmod "$mode" "$dest"
    return 1
  fi
  mv -f "$tmp" "$dest"
}

make_dirs() {
  install -d -m 0755 "$LAB_ETC" "$SLURM_DIR" "$SSH_DIR" "$STATE" "$STATE/slurmd" "$LOGS" "$RUN"
  install -d -m 0700 "$STATE/slurmctld"
  install -d -m 0755 -o munge -g munge "$RUN/munge"
  install -d -m 0700 -o munge -g munge "$STATE/munge" "$LOGS/munge"
  install -d -m 0755 /run/sshd # sshd's privilege-separation chroot
  local host
  for host in "${SSH_HOSTS[@]}"; do install -d -m 0755 "$SSH_DIR/$host"; done
}

# Test users; '*' rather than the locked '!' because sshd without PAM refuses public keys for
# locked accounts.
ensure_users() {
  local user
  for user in "${LAB_USERS[@]}"; do
    if ! id -u "$user" >/dev/null 2>&1; then
      log "creating user $user"
      useradd --create-home --shell /bin/bash --user-group "$user"
    fi
    if [[ $(getent shadow "$user" | cut -d: -f2) != '*' ]]; then usermod -p '*' "$user"; fi
    if [[ ! -d /home/$user ]]; then install -d -m 0700 -o "$user" -g "$user" "/home/$user"; fi
  done
}

ensure_munge_key() {
  [[ -s $MUNGE_KEY ]] && return 0
  log "creating $MUNGE_KEY"
  install -d -m 0700 -o munge -g munge /etc/munge
  mungekey --create --keyfile="$MUNGE_KEY" >&2
  chown munge:munge "$MUNGE_KEY"
  chmod 0600 "$MUNGE_KEY"
}

slurm_conf() {
  local cpus node
  cpus=$(nproc)
  ((cpus > 2)) && cpus=2
  cat <<EOF
# Generated by corral contrib/lab/slurm.sh; rewritten by every 'up'.
ClusterName=corral-lab
SlurmctldHost=ctl(${ADDRESS[ctl]})
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd/%n
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# No cgroups inside the namespaces: track processes by /proc, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
# Both "nodes" share one machine: trust this file over what slurmd detects.
SlurmdParameters=config_overrides
ReturnToService=2
# Finished jobs stay visible to squeue for 5 minutes; dead nodes are noticed quickly.
MinJobAge=300
SlurmdTimeout=30
SlurmctldTimeout=30
MessageTimeout=10
InactiveLimit=0
KillWait=5
Waittime=0
EOF
  for node in "${NODES[@]}"; do
    echo "NodeName=$node NodeAddr=${ADDRESS[$node]} NodeHostname=$node CPUs=$cpus RealMemory=1000 State=UNKNOWN"
  done
  local nodes
  nodes=$(IFS=,; echo "${NODES[*]}")
  echo "PartitionName=debug Nodes=$nodes Default=YES MaxTime=INFINITE State=UP"
  echo "PartitionName=long Nodes=$nodes MaxTime=INFINITE State=UP"
}

# slurmd loads a cgroup plugin even with proctrack/linuxproc and task/none. On a cgroup v2
# machine without systemd it would ask systemd over D-Bus for a scope and fail; make it fall
# back to creating the hierarchy itself. (Ignored on cgroup v1.)
cgroup_conf() {
  cat <<'EOF'
# Generated by corral contrib/lab/slurm.sh; rewritten by every 'up'.
CgroupPlugin=autodetect
IgnoreSystemdOnFailure=yes
EOF
}

sshd_config() {
  local host=$1
  cat <<EOF
# Generated by corral contrib/lab/slurm.sh for the lab host '$host'; rewritten by every 'up'.
Port $SSH_PORT
ListenAddress 0.0.0.0
HostKey $SSH_DIR/$host/ssh_host_ed25519_key
PidFile $RUN/sshd-$host.pid
LogLevel VERBOSE
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
MaxSessions 64
MaxStartups 100:30:200
AllowTcpForwarding yes
AuthorizedKeysFile .ssh/authorized_keys
AuthorizedKeysCommand $KEYS_COMMAND %u
AuthorizedKeysCommandUser nobody
# Non-interactive 'ssh host sbatch ...' reads no profile: hand Slurm its config here.
SetEnv SLURM_CONF=$LAB_SLURM_CONF
PrintMotd no
Subsystem sftp internal-sftp
EOF
}

# sshd runs this as nobody: the keys that the Corral server at the URL in platform-url lists
# for the user (the tests write their server's URL there); nothing when there is no URL.
keys_command() {
  cat <<'EOF'
#!/bin/bash
# AuthorizedKeysCommand of the Corral lab's sshd (generated by contrib/lab/slurm.sh).
# Prints the SSH public keys the Corral server lists for user $1; nothing without a server URL.
set -euo pipefail
user=${1:-}
if [[ ! $user =~ ^[a-zA-Z0-9._-]+$ || $user =~ ^\.+$ ]]; then
  echo "authorized-keys: refusing username '$user'" >&2
  exit 1
fi
url_file=/etc/corral-lab/platform-url
[[ -s $url_file ]] || exit 0
url=$(head -n 1 "$url_file" | tr -d '[:space:]')
[[ -n $url ]] || exit 0
exec curl -fsS --noproxy '*' --max-time 5 "${url%/}/api/users/$user/ssh-public-keys"
EOF
}

# /etc/hosts seen inside the namespaces (ip netns exec binds /etc/netns/<ns>/hosts over it), so
# the hosts know each other by name without touching the machine's own /etc/hosts.
netns_hosts() {
  local host
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
  printf '%s\tcorral-lab-host\n' "$HOST_ADDRESS"
  for host in "${HOSTS[@]}"; do printf '%s\t%s\n' "${ADDRESS[$host]}" "$host"; done
}

# Writes all configuration. Sets SLURM_CHANGED / SSHD_CHANGED_<host> when a running daemon
# must be restarted to see a new file.
SLURM_CHANGED=0
declare -A SSHD_CHANGED=()
write_configs() {
  if slurm_conf | write_if_changed "$LAB_SLURM_CONF" 0644; then SLURM_CHANGED=1; fi
  if cgroup_conf | write_if_changed "$SLURM_DIR/cgroup.conf" 0644; then SLURM_CHANGED=1; fi
  keys_command | write_if_changed "$KEYS_COMMAND" 0755 || true
  chown root:root "$KEYS_COMMAND"
  # Slurm's built-in default config path, so that any login shell or tool finds the lab
  # without SLURM_CONF; only claimed when nothing else lives there.
  local default=/etc/slurm/slurm.conf
  if [[ ! -e $default && ! -L $default ]] || [[ $(readlink "$default" 2>/dev/null) == "$LAB_SLURM_CONF" ]]; then
    install -d -m 0755 /etc/slurm
    ln -sfn "$LAB_SLURM_CONF" "$default"
  else
    log "warning: $default exists and is not the lab's; relying on SLURM_CONF only"
  fi
  local host
  for host in "${SSH_HOSTS[@]}"; do
    if sshd_config "$host" | write_if_changed "$SSH_DIR/$host/sshd_config" 0644; then
      SSHD_CHANGED[$host]=1
    fi
    [[ -s $SSH_DIR/$host/ssh_host_ed25519_key ]] || new_host_key "$host"
  done
  for host in "${HOSTS[@]}"; do
    install -d -m 0755 "/etc/netns/crl-$host"
    netns_hosts | write_if_changed "/etc/netns/crl-$host/hosts" 0644 || true
  done
}

new_host_key() {
  local host=$1 key=$SSH_DIR/$1/ssh_host_ed25519_key
  rm -f "$key.new" "$key.new.pub"
  ssh-keygen -q -t ed25519 -N '' -C "root@$host.corral-lab" -f "$key.new" >&2
  mv -f "$key.new.pub" "$key.pub"
  mv -f "$key.new" "$key"
}

# ---------------------------------------------------------------------------------------------
# Network: one bridge on the host, one namespace per lab host with a veth on it.

ensure_network() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  ip addr replace "$HOST_ADDRESS/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  local host ns veth
  for host in "${HOSTS[@]}"; do
    ns=crl-$host veth=crlv-$host
    [[ -e /run/netns/$ns ]] || ip netns add "$ns"
    if ! ip link show "$veth" >/dev/null 2>&1; then
      ip -n "$ns" link del eth0 2>/dev/null || true
      ip link add "$veth" type veth peer name eth0 netns "$ns"
    fi
    ip link set "$veth" master "$BRIDGE" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr replace "${ADDRESS[$host]}/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route replace default via "$HOST_ADDRESS"
  done
}

teardown_network() {
  local host
  for host in "${HOSTS[@]}"; do
    ip link del "crlv-$host" 2>/dev/null || true
    if [[ -e /run/netns/crl-$host ]]; then ip netns del "crl-$host"; fi
    rm -rf "/etc/netns/crl-$host"
  done
  ip link del "$BRIDGE" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------
# Processes

# Runs a command on a lab host: in its network namespace, in a new UTS namespace named after
# it, and in a mount namespace whose /etc/hosts names the lab hosts (root only; each step
# execs, so a daemon's pid is the one its pid file holds). Not `ip netns exec`: that remounts
# /sys, which hides /sys/fs/cgroup, and slurmd refuses to start without it.
in_host() {
  local host=$1
  shift
  # Slave propagation: mounts made later on the machine still show up inside, while the
  # /etc/hosts bind stays inside.
  # shellcheck disable=SC2016 # $0 and $@ belong to the inner shell
  nsenter --net="/run/netns/crl-$host" unshare --uts --mount --propagation slave -- /bin/sh -c \
    'mount --bind "/etc/netns/crl-$0/hosts" /etc/hosts && hostname "$0" && exec "$@"' "$host" "$@"
}

# The pid in PIDFILE, when it is alive, runs COMM and (given HOST) sits in that host's network
# namespace: a stale file, a reused pid or a daemon orphaned by a deleted namespace is not alive.
alive_pid() {
  local file=$1 comm=$2 host=${3:-} pid
  [[ -r $file ]] || return 1
  read -r pid 2>/dev/null <"$file" || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] && running "$pid" || return 1
  if [[ -n $host ]]; then
    local inode
    inode=$(stat -L -c %i "/run/netns/crl-$host" 2>/dev/null) || return 1
    [[ $(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null) == "$inode" ]] || return 1
  fi
  echo "$pid"
}

# PID exists and is not a zombie. Daemons are reparented to this machine's init, which may
# reap them only seconds later: kill -0 alone would wait for that.
running() {
  local stat
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# Sends TERM to PIDS, waits up to SECONDS for them to go, then KILLs what is left.
terminate() {
  local seconds=$1
  shift
  [[ $# -gt 0 ]] || return 0
  kill -TERM "$@" 2>/dev/null || true
  local deadline=$((SECONDS + seconds)) pid left
  while :; do
    left=()
    for pid in "$@"; do if running "$pid"; then left+=("$pid"); fi; done
    [[ ${#left[@]} -gt 0 ]] || return 0
    if ((SECONDS >= deadline)); then
      kill -KILL "${left[@]}" 2>/dev/null || true
      return 0
    fi
    sleep 0.1
  done
}

# Stops the daemon of PIDFILE (when it is one) and forgets the file.
stop_pidfile() {
  local pid
  if pid=$(alive_pid "$1" "$2"); then terminate 10 "$pid"; fi
  rm -f "$1"
}

# Pids in HOST's network namespace whose command is COMM (all of them without COMM).
host_pids() {
  local host=$1 comm=${2:-} pid
  [[ -e /run/netns/crl-$host ]] || return 0
  for pid in $(ip netns pids "crl-$host" 2>/dev/null); do
    if [[ -z $comm || $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]]; then echo "$pid"; fi
  done
}

# Runs a daemon's start command, which forks and returns; on failure shows its output.
start_daemon() {
  local name=$1 out=$LOGS/$1.out
  shift
  log "starting $name"
  # The daemon inherits none of our descriptors: holding fd 3 (up's real stdout) it would keep
  # "$(slurm.sh up)" waiting, and holding fd 9 (the lock) it would block the next command.
  if ! "$@" </dev/null >>"$out" 2>&1 3>&- 9>&-; then
    tail -n 20 "$out" >&2 || true
    die "$name did not start (output above, from $out)"
  fi
}

munge_ok() {
  alive_pid "$MUNGE_PID" munged >/dev/null && [[ -S $MUNGE_SOCKET ]]
}

ensure_munged() {
  munge_ok && return 0
  stop_pidfile "$MUNGE_PID" munged
  rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
  start_daemon munged runuser -u munge -- munged --socket="$MUNGE_SOCKET" --key-file="$MUNGE_KEY" \
    --pid-file="$MUNGE_PID" --log-file="$LOGS/munge/munged.log" --seed-file="$STATE/munge/munged.seed"
  wait_for 10 "munged" munge_ok "$LOGS/munge/munged.log"
}

ensure_slurm() {
  if [[ $SLURM_CHANGED == 1 ]] && slurm_running; then
    log "the Slurm config changed: restarting the Slurm daemons"
    stop_slurm
  fi
  if ! alive_pid "$RUN/slurmctld.pid" slurmctld ctl >/dev/null; then
    stop_pidfile "$RUN/slurmctld.pid" slurmctld
    # -i: start even when saved state is unreadable, e.g. after a crash mid-write.
    start_daemon slurmctld in_host ctl slurmctld -i
  fi
  local node
  for node in "${NODES[@]}"; do
    if ! alive_pid "$RUN/slurmd-$node.pid" slurmd "$node" >/dev/null; then
      stop_pidfile "$RUN/slurmd-$node.pid" slurmd
      install -d -m 0755 "$STATE/slurmd/$node"
      start_daemon "slurmd-$node" in_host "$node" slurmd -N "$node"
    fi
  done
}

# Any Slurm daemon of the lab runs.
slurm_running() {
  local node
  alive_pid "$RUN/slurmctld.pid" slurmctld >/dev/null && return 0
  for node in "${NODES[@]}"; do alive_pid "$RUN/slurmd-$node.pid" slurmd >/dev/null && return 0; done
  return 1
}

stop_slurm() {
  local node
  for node in "${NODES[@]}"; do stop_pidfile "$RUN/slurmd-$node.pid" slurmd; done
  stop_pidfile "$RUN/slurmctld.pid" slurmctld
}

sshd_pidfile() { echo "$RUN/sshd-$1.pid"; }

# Kills every sshd of HOST, the listener and the sessions' processes, so connections drop.
stop_sshd() {
  local host=$1
  # shellcheck disable=SC2046 # one pid per word
  terminate 5 $(host_pids "$host" sshd)
  rm -f "$(sshd_pidfile "$host")"
}

start_sshd() {
  local host=$1 config=$SSH_DIR/$1/sshd_config
  /usr/sbin/sshd -t -f "$config" 2>&1 | sed 's/^/sshd -t: /' >&2 || true
  start_daemon "sshd-$host" in_host "$host" /usr/sbin/sshd -f "$config" -E "$LOGS/sshd-$host.log"
  wait_for "$SSHD_TIMEOUT" "sshd on $host" sshd_serving "$host" "$LOGS/sshd-$host.log"
}

ensure_sshd() {
  local host=$1
  if [[ -n ${SSHD_CHANGED[$host]:-} && -n $(host_pids "$host" sshd) ]]; then
    log "sshd_config of $host changed: restarting its sshd"
    stop_sshd "$host"
  fi
  if alive_pid "$(sshd_pidfile "$host")" sshd "$host" >/dev/null && sshd_serving "$host"; then
    return 0
  fi
  stop_sshd "$host"
  start_sshd "$host"
}

# sshd of HOST answers with its banner. The probe connects from inside the namespace over
# loopback, so sshd logs it as from 127.0.0.1 and tests counting connections from 10.77.0.x
# are not disturbed by it.
sshd_serving() {
  local host=$1 banner
  # shellcheck disable=SC2016 # the port is the inner shell's $1
  banner=$(nsenter --net="/run/netns/crl-$host" timeout 2 bash -c \
    'exec 3<>"/dev/tcp/127.0.0.1/$1" && head -c 4 <&3' probe "$SSH_PORT" 2>/dev/null) || return 1
  [[ $banner == SSH- ]]
}

# "n1 idle" lines for the compute nodes, as slurmctld sees them (asked from the host, so this
# also proves the bridge carries traffic to the controller).
node_states() {
  timeout 10 sinfo --noheader --Node --partition=debug --format='%N %T' 2>/dev/null
}

# Every compute node responds and takes jobs (busy counts: tests may be running jobs).
nodes_ready() {
  local states node
  states=$(node_states) || return 1
  for node in "${NODES[@]}"; do
    grep -Eq "^$node (idle|allocated|mixed|completing)$" <<<"$states" || return 1
  done
}

# Nodes that slurmctld's saved state keeps drained or down (e.g. from an earlier, broken run)
# although their slurmd now answers: resume them. Not-responding nodes ("*") are left alone.
resume_stuck_nodes() {
  local states node
  states=$(node_states) || return 0
  for node in "${NODES[@]}"; do
    if grep -Eq "^$node (drained|draining|down)$" <<<"$states"; then
      log "resuming node $node ($(grep "^$node " <<<"$states"))"
      scontrol update NodeName="$node" State=RESUME >&2 2>/dev/null || true
    fi
  done
}

# wait_for SECONDS WHAT CHECK... LOGFILE: polls CHECK until it succeeds; on timeout dies with
# the tail of LOGFILE.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local logfile=${*: -1}
  local check=("${@:1:$#-1}")
  local deadline=$((SECONDS + seconds))
  until "${check[@]}"; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${seconds}s waiting for $what; tail of $logfile:"
      tail -n 30 "$logfile" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.2
  done
}

wait_for_slurm() {
  local deadline=$((SECONDS + SLURM_TIMEOUT)) next_resume=$((SECONDS + 5))
  until nodes_ready; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${SLURM_TIMEOUT}s waiting for n1 and n2 to be idle. sinfo says:"
      node_states >&2 || log "(sinfo failed: slurmctld unreachable)"
      sinfo --list-reasons >&2 2>/dev/null || true
      local file
      for file in "$LOGS/slurmctld.log" "$LOGS"/slurmd-n*.log; do
        log "tail of $file:"
        tail -n 15 "$file" >&2 2>/dev/null || true
      done
      exit 1
    fi
    if ((SECONDS >= next_resume)); then
      resume_stuck_nodes
      next_resume=$((SECONDS + 5))
    fi
    sleep 0.5
  done
}

# ---------------------------------------------------------------------------------------------
# Commands

print_settings() {
  local IFS=,
  cat <<EOF
CORRAL_LAB_LOGIN_HOST=${ADDRESS[$LOGIN]}
CORRAL_LAB_LOGIN_PORT=$SSH_PORT
CORRAL_LAB_JUMP_HOST=${ADDRESS[jump]}
CORRAL_LAB_JUMP_PORT=$SSH_PORT
CORRAL_LAB_HOST_ADDRESS=$HOST_ADDRESS
CORRAL_LAB_USERS=${LAB_USERS[*]}
CORRAL_LAB_PARTITIONS=${PARTITIONS[*]}
CORRAL_LAB_NODES=${NODES[*]}
CORRAL_LAB_SLURM_CONF=$LAB_SLURM_CONF
CORRAL_LAB_PLATFORM_URL_FILE=$PLATFORM_URL_FILE
EOF
}

# Serialises the commands that change the lab, so that concurrent 'up's (e.g. from parallel
# test workers) take turns instead of starting daemons twice.
take_lock() {
  exec 9>"/run/corral-lab.lock"
  flock --wait 300 9 || die "another slurm.sh command held /run/corral-lab.lock for 300s"
}

cmd_up() {
  # Only the settings go to stdout: everything else, ours or a tool's, goes to stderr.
  exec 3>&1 1>&2
  local started=$SECONDS host
  install_packages
  make_dirs
  ensure_users
  ensure_munge_key
  write_configs
  ensure_network
  ensure_munged
  ensure_slurm
  for host in "${SSH_HOSTS[@]}"; do ensure_sshd "$host"; done
  wait_for_slurm
  log "up in $((SECONDS - started))s"
  print_settings >&3
}

cmd_down() {
  local host pids
  for host in "${HOSTS[@]}"; do
    # Everything in the namespaces: daemons, job steps, SSH sessions, 'exec' leftovers.
    mapfile -t pids < <(host_pids "$host")
    if [[ ${#pids[@]} -gt 0 ]]; then
      log "stopping ${#pids[@]} process(es) on $host"
      terminate 10 "${pids[@]}"
    fi
  done
  stop_slurm
  for host in "${SSH_HOSTS[@]}"; do rm -f "$(sshd_pidfile "$host")"; done
  stop_pidfile "$MUNGE_PID" munged
  rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
  teardown_network
  log "down"
}

cmd_status() {
  local problems=() host node
  for host in "${HOSTS[@]}"; do
    [[ -e /run/netns/crl-$host ]] || problems+=("namespace crl-$host missing")
  done
  ip link show "$BRIDGE" >/dev/null 2>&1 || problems+=("bridge $BRIDGE missing")
  munge_ok || problems+=("munged not running")
  alive_pid "$RUN/slurmctld.pid" slurmctld ctl >/dev/null || problems+=("slurmctld not running")
  for node in "${NODES[@]}"; do
    alive_pid "$RUN/slurmd-$node.pid" slurmd "$node" >/dev/null || problems+=("slurmd $node not running")
  done
  for host in "${SSH_HOSTS[@]}"; do
    if ! alive_pid "$(sshd_pidfile "$host")" sshd "$host" >/dev/null; then
      problems+=("sshd on $host not running")
    elif ! sshd_serving "$host"; then
      problems+=("sshd on $host not answering")
    fi
  done
  if ! nodes_ready; then
    problems+=("nodes not ready: $(node_states | tr '\n' ' ' || echo 'sinfo failed')")
  fi
  if [[ ${#problems[@]} -gt 0 ]]; then
    printf 'down: %s\n' "${problems[@]}"
    return 1
  fi
  echo "up: $(node_states | tr '\n' ' ')sshd on ${SSH_HOSTS[*]}"
}

cmd_restart_sshd() {
  local host=${1:-$LOGIN}
  [[ -n ${ADDRESS[$host]:-} && -d $SSH_DIR/$host ]] || die "no sshd host '$host' (${SSH_HOSTS[*]})"
  [[ -e /run/netns/crl-$host ]] || die "the lab is down; run 'up' first"
  stop_sshd "$host"
  start_sshd "$host"
  log "sshd on $host restarted"
}

cmd_rekey() {
  local host=${1:-$LOGIN}
  [[ -d $SSH_DIR/$host ]] || die "no sshd host '$host' (${SSH_HOSTS[*]})"
  new_host_key "$host"
  log "new host key for $host: $(ssh-keygen -l -f "$SSH_DIR/$host/ssh_host_ed25519_key.pub")"
  cmd_restart_sshd "$host"
}

cmd_exec() {
  [[ $# -gt 0 ]] || die "usage: $0 exec COMMAND [ARG...]"
  [[ -e /run/netns/crl-ctl ]] || die "the lab is down; run 'up' first"
  in_host ctl "$@"
}

cmd_logs() {
  local file
  for file in "$LOGS/slurmctld.log" "$LOGS"/slurmd-*.log "$LOGS"/sshd-*.log \
    "$LOGS/munge/munged.log" "$LOGS"/*.out; do
    [[ -f $file ]] || continue
    echo "==> $file <=="
    tail -n "${CORRAL_LAB_LOG_LINES:-40}" "$file"
    echo
  done
}

usage() {
  sed -n '2,10s/^# \{0,1\}//p' "$0" >&2
  exit 2
}

main() {
  [[ $# -gt 0 ]] || usage
  local command=$1
  shift
  case $command in
    up | down | status | restart-sshd | rekey | exec | logs) ;;
    -h | --help | help) usage ;;
    *) log "unknown command '$command'"; usage ;;
  esac
  require_root
  case $command in
    up | down | restart-sshd | rekey) take_lock ;;
  esac
  case $command in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    restart-sshd) cmd_restart_sshd "$@" ;;
    rekey) cmd_rekey "$@" ;;
    exec) cmd_exec "$@" ;;
    logs) cmd_logs ;;
  esac
}

main "$@"
