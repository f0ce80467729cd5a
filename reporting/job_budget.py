"""What a run asks of a cluster, read from a Snakemake dry run: GPU-hours, peak GPUs, the longest job.

    snakemake -n --profile profiles/slurm reports/tables.md --config preset=paper paths=... | python -m reporting.job_budget

Every job of the dry run with its `resources:` (runtime in minutes, gpu) and its input and output files. GPU-hours
are the sum of gpu x runtime: the time the jobs ask for (workflow/rules/resources.smk, margins included), an upper
bound of what they use. Peak GPUs: the most GPUs held at once when every job starts as soon as the jobs writing its
inputs end, each running for its asked time on a cluster with no limit (the wall time of that schedule is given
too). The figures in docs/reproducing.md, "Resources on a cluster" come from this command.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

JOB_START = re.compile(r"^(?:local)?rule (\w+):$", re.MULTILINE)


@dataclass
class Job:
    rule: str
    wildcards: str
    minutes: float
    gpus: int
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.rule} ({self.wildcards})" if self.wildcards else self.rule


def _field(block: str, name: str) -> str | None:
    found = re.search(rf"^    {name}: (.*)$", block, re.MULTILINE)
    return found.group(1) if found else None


def parse_dry_run(text: str) -> list[Job]:
    """The jobs of `snakemake -n` output (its default job listing, with resources)."""
    starts = [match.start() for match in JOB_START.finditer(text)]
    if not starts:
        raise ValueError("no job in the dry run: pass the output of `snakemake -n ...` (jobs to run, with resources)")
    jobs = []
    for start, end in zip(starts, [*starts[1:], len(text)], strict=True):
        block = text[start:end]
        resources = dict(re.findall(r"(\w+)=([^,\s]+)", _field(block, "resources") or ""))
        jobs.append(Job(
            rule=JOB_START.match(block).group(1),
            wildcards=_field(block, "wildcards") or "",
            minutes=float(resources.get("runtime", 0)),
            gpus=int(resources.get("gpu", 0)),
            inputs=(_field(block, "input") or "").split(", ") if _field(block, "input") else [],
            outputs=(_field(block, "output") or "").split(", ") if _field(block, "output") else [],
        ))
    return jobs


def schedule(jobs: list[Job]) -> list[tuple[float, float]]:
    """(start, end) minutes of each job, started as soon as the jobs writing its inputs have ended."""
    writer = {path: index for index, job in enumerate(jobs) for path in job.outputs}
    times: dict[int, tuple[float, float]] = {}

    def times_of(index: int, waiting: tuple[int, ...] = ()) -> tuple[float, float]:
        if index not in times:
            if index in waiting:
                raise ValueError(f"a cycle through {jobs[index].name}")
            before = {writer[path] for path in jobs[index].inputs if path in writer} - {index}
            start = max((times_of(other, (*waiting, index))[1] for other in before), default=0.0)
            times[index] = (start, start + jobs[index].minutes)
        return times[index]

    return [times_of(index) for index in range(len(jobs))]


def budget(jobs: list[Job]) -> dict:
    times = schedule(jobs)
    # GPUs held at each job's start (the count can only rise at a start)
    peak = max((sum(job.gpus for job, (start, end) in zip(jobs, times, strict=True) if start <= moment < end)
                for moment, _ in times), default=0)
    # the first by name of the jobs asking the most time (a dry run lists its jobs in no fixed order)
    longest = min(jobs, key=lambda job: (-job.minutes, job.name))
    return {
        "jobs": len(jobs),
        "gpu_jobs": sum(job.gpus > 0 for job in jobs),
        "gpu_hours": sum(job.gpus * job.minutes for job in jobs) / 60,
        "peak_gpus": peak,
        "longest_job": longest.name,
        "longest_job_hours": longest.minutes / 60,
        "as_long_jobs": sum(job.minutes == longest.minutes for job in jobs),
        "wall_hours": max(end for _, end in times) / 60,
    }


def report(figures: dict) -> str:
    return "\n".join([
        f"jobs: {figures['jobs']} ({figures['gpu_jobs']} on GPUs)",
        f"GPU-hours asked: {figures['gpu_hours']:.0f}",
        f"peak GPUs: {figures['peak_gpus']}",
        f"longest job: {figures['longest_job']}, {figures['longest_job_hours']:.1f} h"
        + (f" ({figures['as_long_jobs']} jobs ask as long)" if figures["as_long_jobs"] > 1 else ""),
        f"wall time, every job started as soon as its inputs are there: {figures['wall_hours']:.1f} h",
    ])


def main() -> int:
    try:
        print(report(budget(parse_dry_run(sys.stdin.read()))))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
