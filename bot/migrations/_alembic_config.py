"""How migsafe runs Alembic, the same way in both children. Runs INSIDE the children.

The dry-run's `_offline_child.py` and the sandbox's `_online_child.py` are started as single scripts
with `python -I` (migsafe is not importable there); this module is inlined into each of them
when they are started (`bot.migrations.childscript`). Standard library and alembic only.

What it does is what `cd WORKING_DIR && alembic -c INI -n SECTION -x ARG... COMMAND` does:
the ini's folder as the working directory (relative `script_location`, `version_locations`
and `prepend_sys_path` resolve from there, `%(here)s` is the ini's folder), the named
section, the `-x` arguments where `context.get_x_argument()` finds them (`config.cmd_opts`),
plus what migsafe sets: the script directory it resolved, the database URL (escaped for
configparser), the variables env.py reads (DATABASE_URL, PG*, the policy's `sandbox.env`),
and PYTHONPATH following `prepend_sys_path` for the processes env.py starts.

Spec (the request's "alembic" object):
  {"working_dir", "ini_path" | null, "section", "script_location" | null,
   "x_arguments": [...], "url", "env": {name: value}}
"""

from __future__ import annotations

import inspect
import os
import re
import sys
import warnings
from typing import Any, TextIO


def enter_project(spec: dict[str, Any]) -> None:
    """The working directory, first on sys.path (as `python -m alembic` run there), and the
    variables env.py may read."""
    working_dir = spec["working_dir"]
    os.chdir(working_dir)
    if working_dir not in sys.path:
        sys.path.insert(0, working_dir)
    os.environ.update(spec.get("env") or {})


def alembic_config(
    spec: dict[str, Any],
    command: list[str],
    *,
    output_buffer: TextIO | None = None,
    stdout: TextIO = sys.stdout,
) -> Any:
    """The `alembic.config.Config` that `alembic ... COMMAND` would build, with migsafe's
    database URL; `command` (e.g. ["upgrade", "heads"]) is what `config.cmd_opts` shows."""
    from alembic.config import CommandLine, Config

    argv = ["-c", spec["ini_path"]] if spec.get("ini_path") else []
    argv += ["-n", spec.get("section") or "alembic"]
    # -xVALUE: one argument even when VALUE starts with "-".
    argv += [f"-x{value}" for value in spec.get("x_arguments") or []]
    options = CommandLine(prog="alembic").parser.parse_args([*argv, *command])
    kwargs: dict[str, Any] = {}
    toml = os.path.join(spec["working_dir"], "pyproject.toml")
    if "toml_file" in inspect.signature(Config).parameters and os.path.isfile(toml):
        kwargs["toml_file"] = toml  # Alembic >= 1.16 reads [tool.alembic] from there too
    config = Config(
        spec.get("ini_path") or None,
        ini_section=options.name,
        output_buffer=output_buffer,
        stdout=stdout,
        cmd_opts=options,
        **kwargs,
    )
    if spec.get("script_location"):
        config.set_main_option("script_location", _escaped(spec["script_location"]))
    config.set_main_option("sqlalchemy.url", _escaped(spec["url"]))
    _export_sys_path(config)
    return config


def _escaped(value: str) -> str:
    """A value for configparser, which reads `%` as the start of an interpolation."""
    return value.replace("%", "%%")


def _export_sys_path(config: Any) -> None:
    """PYTHONPATH = prepend_sys_path (absolute), for the processes env.py starts: Alembic puts
    the entries on sys.path itself (relative ones from the working directory)."""
    getter = getattr(config, "get_prepend_sys_paths_list", None)
    if getter is None:  # Alembic < 1.16: the legacy splitting on spaces, commas and colons
        raw = config.get_main_option("prepend_sys_path")
        entries = [p for p in re.split(r", *|(?: +)|\:", raw or "") if p]
    else:
        with warnings.catch_warnings():  # Alembic warns again when it reads them itself
            warnings.simplefilter("ignore")
            entries = getter() or []
    paths = [os.path.abspath(entry) for entry in entries if entry]
    if paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(paths)
