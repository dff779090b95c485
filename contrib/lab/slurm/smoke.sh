#!/usr/bin/env bash
# End-to-end check of the Slurm lab (contrib/lab/slurm.sh) over real SSH, as the user alice:
# jobs run on n1/n2 and write into her home, JSON output, both partitions, scancel, a 2-node
# job, the jump host, restart-sshd and rekey. Brings the lab up first; leaves it up.
#
#   bash contrib/lab/slurm/smoke.sh
#
# It installs a throwaway key in /home/alice/.ssh/authorized_keys and removes that file again
# when it ends, whatever happens (tests manage their own keys), so do not run it while a test
# relies on that file.
set -euo pipefail

LAB=$(cd "$(dirname "$0")/.." && pwd)/slurm.sh
WORK=$(mktemp -d /tmp/corral-lab-smoke.XXXXXX)
readonly LAB WORK
readonly AUTHORIZED=/home/alice/.ssh/authorized_keys

passed=0
ok() { echo "ok: $*" >&2; passed=$((passed + 1)); }
fail() { echo "FAILED: $*" >&2; exit 1; }
cleanup() { rm -rf "$WORK" "$AUTHORIZED"; }
trap cleanup EXIT

started=$SECONDS
eval "$(bash "$LAB" up)"
ok "up in $((SECONDS - started))s"

ssh-keygen -q -t ed25519 -N '' -f "$WORK/key"
install -d -m 0700 -o alice -g alice /home/alice/.ssh
install -m 0600 -o alice -g alice "$WORK/key.pub" "$AUTHORIZED"
cat >"$WORK/config" <<EOF
Host *
  User alice
  Port $CORRAL_LAB_LOGIN_PORT
  IdentityFile $WORK/key
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  BatchMode yes
  ConnectTimeout 10
EOF
login() { ssh -F "$WORK/config" "$CORRAL_LAB_LOGIN_HOST" "$@" </dev/null; }

# Waits until job $1 reaches state $2 (as scontrol reports it), 60 s at most.
wait_state() {
  local state
  for _ in $(seq 120); do
    state=$(login "scontrol show job $1" | grep -o 'JobState=[A-Z_]*' || true)
    [[ $state == "JobState=$2" ]] && return 0
    sleep 0.5
  done
  fail "job $1 is $state, not $2"
}

[[ $(login 'sbatch --version') == slurm* ]] || fail "sbatch over non-interactive SSH"
[[ $(login 'sinfo --noheader --format=%P' | sort | tr '\n' ' ') == "debug* long " ]] ||
  fail "sinfo does not show the partitions debug and long"
ok "non-interactive SSH finds Slurm; partitions debug and long"

job=$(login 'sbatch --parsable --wrap hostname')
wait_state "$job" COMPLETED
grep -Eqx 'n[12]' "/home/alice/slurm-$job.out" || fail "job $job output: $(cat "/home/alice/slurm-$job.out")"
[[ $(stat -c %U "/home/alice/slurm-$job.out") == alice ]] || fail "job $job output not alice's"
ok "job $job ran as alice on $(cat "/home/alice/slurm-$job.out")"

login 'squeue --json' | python3 -c 'import json, sys; json.load(sys.stdin)["jobs"]' ||
  fail "squeue --json is not JSON with jobs"
ok "squeue --json"

job=$(login 'sbatch --parsable --wrap "sleep 300"')
wait_state "$job" RUNNING
login "scancel $job"
wait_state "$job" CANCELLED
login "squeue --states=all --noheader --format=%T --jobs=$job" | grep -qx CANCELLED ||
  fail "squeue does not show job $job as CANCELLED"
ok "scancel $job: CANCELLED"

job=$(login "sbatch --parsable -N 2 --partition=long --wrap 'srun hostname'")
wait_state "$job" COMPLETED
[[ $(sort "/home/alice/slurm-$job.out" | tr '\n' ' ') == "n1 n2 " ]] ||
  fail "2-node job $job printed: $(cat "/home/alice/slurm-$job.out")"
ok "2-node job $job ran on n1 and n2"

[[ $(ssh -F "$WORK/config" -J "alice@$CORRAL_LAB_JUMP_HOST:$CORRAL_LAB_JUMP_PORT" \
  "$CORRAL_LAB_LOGIN_HOST" hostname </dev/null) == ctl ]] || fail "ssh through the jump host"
ok "ssh through the jump host"

fingerprint() { ssh-keyscan -p "$CORRAL_LAB_LOGIN_PORT" "$CORRAL_LAB_LOGIN_HOST" 2>/dev/null | ssh-keygen -lf -; }
before=$(fingerprint)
bash "$LAB" restart-sshd
[[ $(login hostname) == ctl && $(fingerprint) == "$before" ]] || fail "restart-sshd"
ok "restart-sshd"
bash "$LAB" rekey
after=$(fingerprint)
[[ -n $after && $after != "$before" ]] || fail "rekey kept the host key"
[[ $(login hostname) == ctl ]] || fail "ssh after rekey"
ok "rekey"

bash "$LAB" status >&2
echo "$passed passed, 0 failed"
