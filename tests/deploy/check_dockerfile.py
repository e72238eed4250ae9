#!/usr/bin/env python3
"""Checks a Dockerfile offline, without building it (the CUDA image cannot be
built here): it parses (continuations, comments, known instructions, FROM first
after global ARGs, arguments used in FROM declared before it, exec-form
ENTRYPOINT and CMD as JSON); COPY --from names an earlier stage or an image;
every COPY source exists in the repository and is not left out of the context
by .dockerignore; every scripts/NAME a RUN calls exists, is executable and was
copied into that stage; the last stage runs as a numeric non-root USER.

Usage: check_dockerfile.py REPO_ROOT DOCKERFILE...
Prints one line per problem and exits 1 if there is any.
"""
import fnmatch
import json
import os
import re
import sys

INSTRUCTIONS = {"FROM", "RUN", "COPY", "ADD", "ARG", "ENV", "WORKDIR", "USER", "VOLUME",
                "EXPOSE", "ENTRYPOINT", "CMD", "LABEL", "HEALTHCHECK", "SHELL", "STOPSIGNAL",
                "ONBUILD"}


def instructions(path):
    """Yields (line number, INSTRUCTION, arguments) with continuations joined."""
    pending, start = "", 0
    for number, line in enumerate(open(path), 1):
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = pending + stripped
        pending = ""
        word, _, rest = text.partition(" ")
        yield start, word.upper(), rest.strip()
    if pending:
        yield start, "", pending


def ignored(root, source):
    patterns = [p.strip().rstrip("/") for p in open(os.path.join(root, ".dockerignore"))
                if p.strip() and not p.startswith("#")]
    parts = source.strip("/").split("/")
    return any(fnmatch.fnmatch("/".join(parts[:i]), p.lstrip("/").replace("**/", ""))
               for p in patterns for i in range(1, len(parts) + 1))


def check(root, dockerfile):
    problems = []
    stages, copied, declared, user = [], set(), set(), None
    where = os.path.relpath(dockerfile, root)
    for line, word, args in instructions(dockerfile):
        at = f"{where}:{line}"
        if word not in INSTRUCTIONS:
            problems.append(f"{at}: unknown instruction '{word}'")
            continue
        if not stages and word not in ("FROM", "ARG"):
            problems.append(f"{at}: {word} before the first FROM")
        if word == "ARG" and not stages:
            declared.add(args.split("=")[0])
        elif word == "FROM":
            m = re.match(r"^(\S+)(?:\s+AS\s+(\S+))?$", args, re.IGNORECASE)
            if not m:
                problems.append(f"{at}: FROM '{args}' does not parse")
                continue
            for var in re.findall(r"\$\{?(\w+)", m.group(1)):
                if var not in declared:
                    problems.append(f"{at}: FROM uses ${var}, no ARG before the first FROM")
            stages.append(m.group(2))
            copied, user = set(), None
        elif word in ("COPY", "ADD"):
            words = args.split()
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            if len(paths) < 2:
                problems.append(f"{at}: {word} needs a source and a destination")
                continue
            source_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
            if source_stage is None:
                for source in paths[:-1]:
                    if source != "." and not os.path.exists(os.path.join(root, source)):
                        problems.append(f"{at}: COPY source {source} does not exist")
                    elif source != "." and ignored(root, source):
                        problems.append(f"{at}: COPY source {source} is left out by .dockerignore")
                    copied.add(source)
            elif source_stage not in stages[:-1] and not re.search(r"[/:$]", source_stage):
                problems.append(f"{at}: COPY --from={source_stage} names no earlier stage")
        elif word == "RUN":
            for script in re.findall(r"(?<![\w/])(scripts/[\w.-]+)", args):
                path = os.path.join(root, script)
                if not os.access(path, os.X_OK):
                    problems.append(f"{at}: RUN calls {script}, which is not an executable in the repository")
                elif "." not in copied and script not in copied:
                    problems.append(f"{at}: RUN calls {script}, not copied into this stage")
        elif word in ("ENTRYPOINT", "CMD") and args.startswith("["):
            try:
                json.loads(args)
            except ValueError as e:
                problems.append(f"{at}: {word} is not a JSON array: {e}")
        elif word == "USER":
            user = args
    if not stages:
        problems.append(f"{where}: no FROM")
    uid = (user or "").split(":")[0]
    if not uid.isdigit() or uid == "0":
        problems.append(f"{where}: the last stage does not run as a numeric non-root USER ({user})")
    return problems


def main():
    root = sys.argv[1]
    problems = [p for f in sys.argv[2:] for p in check(root, f)]
    for p in problems:
        print(f"check_dockerfile: {p}")
    sys.exit(1 if problems else 0)


main()
