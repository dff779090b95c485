"""Turning a :class:`~corral_sdk.providers.scheduler.JobSpec` into a PBS job script and the
``qsub`` options that go with it.

Options go on the command line, where they override ``#PBS`` lines in the script. The job's
environment and working directory go into the script instead: ``qsub -v`` needs quoting that
cannot express every value (commas and both kinds of quotes), values PBS stores that way break
``qstat -F json`` on older releases (openpbs/openpbs#1255, #2049), and PBS Professional has no
``-d``: jobs start in the home directory. Lines are added after the script's leading block of
comments and ``#PBS`` directives, since qsub stops reading directives at the first command.
"""

from __future__ import annotations

import posixpath
import re
import shlex

from corral_pbs.config import PBSConfig
from corral_sdk.errors import Invalid
from corral_sdk.providers.scheduler import JobSpec

__all__ = [
    "SCRIPT_MODE",
    "WRITE_FAILED",
    "interpreter_family",
    "job_name",
    "job_script",
    "qsub_options",
    "shell_path",
    "walltime",
    "write_script_command",
]

SCRIPT_MODE = 0o600
"""The mode of a job script, which may hold the job's environment: what ``umask 077`` gives
the file ``cat`` creates."""

WRITE_FAILED = "corral: cannot write the job script"
"""The line the submission command prints on standard error when writing the script failed,
in which case qsub did not run."""

NAME_MAX = 230  # PBS_MAXJOBNAME in OpenPBS's pbs_ifl.h
_NAME_BAD = re.compile(r"[^A-Za-z0-9_+.-]")  # check_job_name(): alphanumerics and - _ + .
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESOURCE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ARRAY = re.compile(r"^(\d+)-(\d+)(?::(\d+))?(?:%(\d+))?$")
_GPUS = re.compile(r"^(?:([A-Za-z0-9_.-]+):)?(\d+)$")
_MAIL = {"BEGIN": "b", "END": "e", "FAIL": "a", "ABORT": "a", "ALL": "abe", "NONE": "n"}
_SH = frozenset({"sh", "bash", "dash", "ash", "ksh", "ksh93", "mksh", "pdksh", "zsh", "yash"})
_CSH = frozenset({"csh", "tcsh"})


def shell_path(path: str) -> str:
    """``path`` as one shell word: ``~/x`` and relative paths are taken from ``$HOME``, since
    qsub may run in another directory."""
    if path.startswith("~/"):
        path = path[2:]
    elif path == "~":
        return '"$HOME"'
    if path.startswith("/"):
        return shlex.quote(path)
    return '"$HOME"/' + shlex.quote(path)


def write_script_command(path: str) -> str:
    """The command that writes its standard input to ``path``, creating the directory when it
    is missing. The file is created by ``cat`` under ``umask 077``, which gives a new file
    exactly :data:`SCRIPT_MODE` (the name is random, so the file is new): no ``chmod`` to run.
    The logic runs in ``sh``; when a step fails it removes what it wrote, prints
    :data:`WRITE_FAILED` to standard error after the step's own message, and exits 1, so a
    following ``&& qsub`` runs on complete scripts only. ``path`` is taken from ``$HOME`` as
    :func:`shell_path` says."""
    script = (
        '{ [ -d "$1" ] || mkdir -p -- "$1"; } && umask 077 && cat > "$2" '
        f'|| {{ rm -f -- "$2" 2>/dev/null; echo "{WRITE_FAILED}" >&2; exit 1; }}'
    )
    directory = posixpath.dirname(path) or "."
    return f"sh -c {shlex.quote(script)} sh {shell_path(directory)} {shell_path(path)}"


def walltime(seconds: int) -> str:
    """``HH:MM:SS``, hours unbounded (PBS reads ``36:00:00``)."""
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def job_name(name: str) -> str:
    """A name qsub accepts: characters other than letters, digits and ``- _ + .`` become
    ``_``, a first character that is not a letter gets a ``j`` before it, at most 230."""
    cleaned = _NAME_BAD.sub("_", name.strip())
    if cleaned and not cleaned[0].isalpha():
        cleaned = "j" + cleaned
    return cleaned[:NAME_MAX]


def interpreter_family(script: str) -> str:
    """``"sh"``, ``"csh"`` or ``"other"``: who runs the script, from its ``#!`` line (PBS runs
    the script as a program, so the kernel honours it). No ``#!`` line: a POSIX shell."""
    first = script.split("\n", 1)[0]
    if not first.startswith("#!"):
        return "sh"
    words = first[2:].split()
    if not words:
        return "sh"
    program = posixpath.basename(words[0])
    if program == "env":
        rest = [word for word in words[1:] if not word.startswith("-") and "=" not in word]
        program = posixpath.basename(rest[0]) if rest else ""
    if program in _SH:
        return "sh"
    if program in _CSH:
        return "csh"
    return "other"


def job_script(job: JobSpec) -> str:
    """The script to submit: ``script_headers`` after the ``#!`` line, then the script's own
    directives, then the environment and ``cd`` lines, then the rest."""
    family = interpreter_family(job.script)
    lines = job.script.splitlines()
    head: list[str] = []
    if lines and lines[0].startswith("#!"):
        head.append(lines.pop(0))
    if job.script_headers.strip():
        head.extend(job.script_headers.rstrip("\n").splitlines())
    directives: list[str] = []
    while lines and (not lines[0].strip() or lines[0].lstrip().startswith("#")):
        directives.append(lines.pop(0))
    prologue = _prologue(job, family)
    text = "\n".join([*head, *directives, *prologue, *lines])
    return text + "\n"


def _prologue(job: JobSpec, family: str) -> list[str]:
    if family == "other":
        if job.working_directory is not None:
            raise Invalid(
                "PBS starts jobs in the home directory and this script is not a shell script, "
                "so Corral cannot change its directory: do it in the script",
                field="working_directory",
            )
        return []  # the environment goes through qsub -v
    lines: list[str] = []
    for name, value in job.env.items():
        _check_env(name, value, family)
        if family == "csh":
            lines.append(f"setenv {name} {shlex.quote(value)}")
        else:
            lines.append(f"export {name}={shlex.quote(value)}")
    if job.working_directory is not None:
        _check_line(job.working_directory, "working_directory")
        target = shell_path(job.working_directory)
        lines.append(f"cd {target} || exit 1" if family == "csh" else f"cd -- {target} || exit 1")
    if lines:
        lines.insert(0, "# added by Corral: the job's environment and working directory")
    return lines


def _check_env(name: str, value: str, family: str) -> None:
    if not _ENV_NAME.match(name):
        raise Invalid(f"environment variable name {name!r} is not valid", field="env")
    if "\0" in value:
        raise Invalid(f"the value of {name} contains a NUL byte", field="env")
    if family == "csh" and ("\n" in value or "\r" in value):
        raise Invalid(f"csh cannot hold the line break in the value of {name}", field="env")


def _check_line(value: str, field: str) -> None:
    if any(c in value for c in "\n\r\0"):
        raise Invalid(f"{field} must be on one line", field=field)


def qsub_options(job: JobSpec, config: PBSConfig) -> list[str]:
    """qsub's options for ``job``, each already a shell word (quoted where needed)."""
    options: list[str] = []

    def add(flag: str, value: str | None = None, *, field: str) -> None:
        options.append(flag)
        if value is not None:
            _check_line(value, field)
            options.append(shlex.quote(value))

    if job.qos is not None:
        raise Invalid("PBS has no QOS: use a queue (partition) instead", field="qos")
    if job.name:
        name = job_name(job.name)
        if name:
            add("-N", name, field="name")
    queue = job.partition if job.partition is not None else config.default_queue
    if queue is not None:
        add("-q", queue, field="partition")
    if job.account is not None:
        add("-A", job.account, field="account")
    select = _select(job, config)
    if select is not None:
        add("-l", f"select={select}", field="nodes")
    if job.time_limit_seconds is not None:
        add("-l", f"walltime={walltime(job.time_limit_seconds)}", field="time_limit_seconds")
    if job.exclusive:
        add("-l", "place=excl", field="exclusive")
    if job.output_path is not None:
        add("-o", None, field="output_path")
        options.append(_path_word(job.output_path, "output_path"))
    if job.error_path is not None:
        add("-e", None, field="error_path")
        options.append(_path_word(job.error_path, "error_path"))
    elif job.output_path is not None:
        add("-j", "oe", field="error_path")  # one file, as with Slurm's --output alone
    if job.array is not None:
        add("-J", _array(job.array, config), field="array")
    if job.depends_on:
        add("-W", f"depend=afterok:{':'.join(_dependencies(job.depends_on))}", field="depends_on")
    if job.hold:
        add("-h", field="hold")
    if job.mail_types:
        add("-m", _mail(job.mail_types), field="mail_types")
    if job.mail_user is not None:
        add("-M", job.mail_user, field="mail_user")
    if job.env and interpreter_family(job.script) == "other":
        add("-v", _variable_list(job.env), field="env")
    options.extend(_flags(job.flags))
    return options


def _path_word(path: str, field: str) -> str:
    _check_line(path, field)
    if path.startswith("~"):
        return shell_path(path)
    return shlex.quote(path)  # relative: from the working directory, where qsub runs


def _select(job: JobSpec, config: PBSConfig) -> str | None:
    """``N:ncpus=C:mpiprocs=P:ompthreads=T:mem=Mmb:ngpus=G``: one chunk per node, or one per
    task when only ``ntasks`` is given (PBS then packs them as it likes)."""
    if all(
        value is None
        for value in (
            job.nodes,
            job.ntasks,
            job.ntasks_per_node,
            job.cpus_per_task,
            job.memory_mb,
            job.gpus_per_node,
        )
    ):
        return None
    chunks: int
    mpiprocs: int | None = None
    if job.ntasks_per_node is not None:
        mpiprocs = job.ntasks_per_node
        if job.nodes is not None:
            chunks = job.nodes
        elif job.ntasks is not None:
            chunks = -(-job.ntasks // job.ntasks_per_node)
        else:
            chunks = 1
        if job.ntasks is not None and job.ntasks != chunks * job.ntasks_per_node:
            raise Invalid(
                "ntasks must be nodes x ntasks_per_node: PBS gives every chunk the same "
                "number of MPI processes",
                field="ntasks",
            )
    elif job.ntasks is not None:
        if job.nodes is not None:
            if job.ntasks % job.nodes:
                raise Invalid(
                    "ntasks must be a multiple of nodes: PBS gives every chunk the same "
                    "number of MPI processes",
                    field="ntasks",
                )
            chunks, mpiprocs = job.nodes, job.ntasks // job.nodes
        else:
            if job.memory_mb is not None or job.gpus_per_node is not None:
                raise Invalid(
                    "memory_mb and gpus_per_node are per node: give nodes with ntasks",
                    field="nodes",
                )
            chunks, mpiprocs = job.ntasks, 1
    else:
        chunks = job.nodes or 1
    parts = [str(chunks)]
    if job.cpus_per_task is not None:
        parts.append(f"ncpus={(mpiprocs or 1) * job.cpus_per_task}")
    elif mpiprocs is not None:
        parts.append(f"ncpus={mpiprocs}")
    if mpiprocs is not None:
        parts.append(f"mpiprocs={mpiprocs}")
    if job.cpus_per_task is not None:
        parts.append(f"ompthreads={job.cpus_per_task}")
    if job.memory_mb is not None:
        parts.append(f"mem={job.memory_mb}mb")
    if job.gpus_per_node is not None:
        parts.extend(_gpus(job.gpus_per_node, config))
    return ":".join(parts)


def _gpus(request: str, config: PBSConfig) -> list[str]:
    match = _GPUS.match(request.strip())
    if match is None or int(match[2]) <= 0:
        raise Invalid(
            f"gpus_per_node {request!r} is not a count or type:count", field="gpus_per_node"
        )
    parts = [f"ngpus={int(match[2])}"]
    if match[1]:
        if config.gpu_type_resource is None:
            raise Invalid(
                "this cluster names no GPU type resource (gpu_type_resource): ask for a count",
                field="gpus_per_node",
            )
        parts.append(f"{config.gpu_type_resource}={match[1]}")
    return parts


def _array(spec: str, config: PBSConfig) -> str:
    """PBS's ``X-Y[:Z][%N]``: a range with an optional step and limit. Lists (``1,3,5``) and
    single indices do not exist in PBS; neither does a range whose end is not after its start."""
    value = spec.strip()
    match = _ARRAY.match(value)
    if match is None:
        raise Invalid(
            f"array {spec!r}: PBS takes one range start-end[:step][%limit] (like 0-9, 0-99:10, "
            "0-9%2), not lists or single indices",
            field="array",
        )
    start, end, step, limit = match.groups()
    if int(start) >= int(end):
        raise Invalid(f"array {spec!r}: the end must be greater than the start", field="array")
    if step is not None and int(step) < 1:
        raise Invalid(f"array {spec!r}: the step must be at least 1", field="array")
    if limit is not None:
        if not config.array_throttle:
            raise Invalid(
                f"array {spec!r}: this PBS server takes no %limit on running subjobs",
                field="array",
            )
        if int(limit) < 1:
            raise Invalid(f"array {spec!r}: the %limit must be at least 1", field="array")
    return value


def _dependencies(job_ids: tuple[str, ...]) -> list[str]:
    for job_id in job_ids:
        if not job_id or any(c in job_id for c in ":,\n\r\0 \t"):
            raise Invalid(f"{job_id!r} is not a PBS job id", field="depends_on")
    return list(job_ids)


def _mail(types: tuple[str, ...]) -> str:
    letters = ""
    for kind in types:
        key = kind.strip().upper()
        if key in _MAIL:
            mapped = _MAIL[key]
        elif key and set(key.lower()) <= set("abejn"):
            mapped = key.lower()  # PBS's own letters (-m abe)
        else:
            raise Invalid(
                f"mail type {kind!r}: PBS mails at BEGIN, END and FAIL (or ALL, NONE)",
                field="mail_types",
            )
        letters += "".join(letter for letter in mapped if letter not in letters)
    if "n" in letters and len(letters) > 1:
        raise Invalid("mail type NONE cannot be combined with others", field="mail_types")
    return letters


def _variable_list(env: dict[str, str]) -> str:
    """``qsub -v`` for scripts Corral cannot add lines to: a value with commas is quoted with
    the quote it does not contain (qsub(1B))."""
    items = []
    for name, value in env.items():
        if not _ENV_NAME.match(name):
            raise Invalid(f"environment variable name {name!r} is not valid", field="env")
        if any(c in value for c in "\n\r\0"):
            raise Invalid(f"qsub -v cannot pass the line break in {name}", field="env")
        word = value
        if "," in value or "'" in value or '"' in value:
            if "'" not in value:
                word = f"'{value}'"
            elif '"' not in value:
                word = f'"{value}"'
            else:
                raise Invalid(
                    f"qsub -v cannot pass {name}: its value has commas or quotes of both kinds",
                    field="env",
                )
        items.append(f"{name}={word}")
    return ",".join(items)


def _flags(flags: dict[str, str | None]) -> list[str]:
    """One-letter keys are qsub options (``{"r": "n"}`` is ``-r n``, ``{"V": None}`` is
    ``-V``); longer keys are resources (``{"filesystems": "home:eagle"}`` is
    ``-l filesystems=home:eagle``)."""
    words: list[str] = []
    for raw, value in flags.items():
        key = raw.lstrip("-")
        if value is not None:
            _check_line(value, "flags")
        if len(key) == 1 and key.isalpha():
            words.append(f"-{key}")
            if value is not None:
                words.append(shlex.quote(value))
        elif _RESOURCE.match(key):
            if value is None:
                raise Invalid(f"resource {key!r} needs a value", field="flags")
            words.extend(["-l", shlex.quote(f"{key}={value}")])
        else:
            raise Invalid(
                f"flag {raw!r} is neither a qsub option letter nor a resource name", field="flags"
            )
    return words
