#!/usr/bin/env python3
"""Prints the numbers bench/README.md records for GenerativeDistill, read from the runs' report.json files.

Usage: summarize.py OUT_DIR [math|mail|served|mail-served|seq]   (the task's recipes, default math; OUT_DIR holds reports/*.report.json: run.sh copies each run's report there before
`baseline accept` replays the labels-only recipe from the cache and rewrites its report)
Nothing here is computed anew except sums and ratios of what the engine reported; every metric, p-value and
count is the engine's own.
"""
import json
import os
import sys

RECIPES = {
    "math": ["math-teacher", "math-labels-only", "math-student", "math-student-int4", "math-student-seq"],
    "mail": ["mail-teacher", "mail-labels-only", "mail-student"],
    "served": ["math-student-local", "math-student-served"],
    "mail-served": ["mail-student", "mail-student-served", "mail-student-served-tokens"],
    "seq": ["math-student-seq", "math-student-local"],
}
# The headline metric of each task: exact match of the final number; ROUGE-L F1 of the subject line.
HEADLINE = {"math": "exact_match", "mail": "rouge_l", "served": "exact_match", "mail-served": "rouge_l", "seq": "exact_match"}


def metrics(evaluation, headline):
    generation = evaluation["generation"]
    m = generation["metrics"]
    interval = generation.get("ci95", {}).get(headline)
    return {
        "em": m.get(headline),
        "ci": interval,
        "parse": m.get("parse_failure_rate"),
        "ppl": m.get("perplexity"),
        "agree": m.get("agreement_with_teacher"),
        "tps1": m.get("tokens_per_second"),
        "tps8": m.get("tokens_per_second_batch"),
        "failures": generation.get("parse_failures"),
        "unfinished": generation.get("unfinished"),
        "mb": evaluation.get("size_mb"),
        "params": evaluation.get("parameters"),
    }


def fmt(value, form):
    """A number in FORM, or n/a where the engine reports none (an endpoint teacher has no perplexity, speed or size)."""
    return "n/a" if value is None else format(value, form)


def row(name, seconds, cached, m):
    shown = "n/a" if seconds is None else "cached" if cached else f"{seconds:.0f}"
    ci = f"[{m['ci'][0]:.3f}, {m['ci'][1]:.3f}]" if m["ci"] else ""
    agree = "" if m["agree"] is None else f"{m['agree']:.3f}"
    return (f"| {name} | {shown} | {m['em']:.3f} {ci} | {m['parse']:.3f} | {fmt(m['ppl'], '.4f')} | {agree} | "
            f"{fmt(m['tps1'], '.0f')} | {fmt(m['tps8'], '.0f')} | {fmt(m['mb'], '.3f')} | {fmt(m['params'], ',')} |")


def brief(values):
    """A per-epoch list, shortened past 8 epochs to its first 3, its lowest (with its epoch) and its last."""
    rounded = [round(x, 4) for x in values]
    if len(rounded) <= 8:
        return rounded
    lowest = min(range(len(rounded)), key=rounded.__getitem__)
    return f"{rounded[:3]} ... lowest {rounded[lowest]} (epoch {lowest + 1}) ... last {rounded[-1]} ({len(rounded)} epochs)"


def main(out, task):
    headline = HEADLINE[task]
    print(f"| recipe / stage | seconds | {headline} [95% CI] | parse failures | perplexity | agreement with teacher | tokens/s batch 1 | tokens/s batch 8 | MB | parameters |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    reports = {}
    for recipe in RECIPES[task]:
        path = os.path.join(out, "reports", f"{recipe}.report.json")
        if not os.path.exists(path):
            continue
        report = json.load(open(path, encoding="utf-8"))
        reports[recipe] = report
        if report.get("teacher") and (recipe == f"{task}-labels-only" or task.endswith("served")):
            name = f"{recipe}: its teacher" if task.endswith("served") else "teacher (evaluated by the student recipes)"
            print(row(name, None, False, metrics(report["teacher"], headline)))
        for stage in report["stages"]:
            print(row(f"{recipe} / {stage['stage']}", stage["seconds"], stage["cached"], metrics(stage["evaluation"], headline)))
            if stage.get("baseline"):
                print(row(f"{recipe} / {stage['stage']}: labels-only twin", None, False, metrics(stage["baseline"], headline)))

    for recipe, report in reports.items():
        print(f"\n{recipe}: passed {report['passed']}, wall seconds of the stages {sum(s['seconds'] for s in report['stages'] if not s['cached']):.0f}")
        for stage in report["stages"]:
            details = stage["details"]
            if stage["stage"] == "generate":
                dropped = {k.split(".", 1)[1]: v for k, v in details.items() if k.startswith("dropped.")}
                print(f"  generate: {details['prompts']} prompts, {details['kept']} kept, {details['dropped']} dropped {dropped}, "
                      f"{details['generated_tokens']} tokens at {details['teacher_tokens_per_second']} tokens/s")
            endpoint = {k: v for k, v in details.items() if k.startswith("endpoint")}
            if endpoint:
                print(f"  {stage['stage']}: {endpoint}")
            if stage.get("gain_from_distillation") is not None:
                print(f"  {stage['stage']}: {details.get('steps')} steps ({details.get('steps_per_epoch')} per epoch); "
                      f"twin {stage['baseline_details'].get('steps')} steps; gain from distillation {stage['gain_from_distillation']:+.4f}")
            if "epochs" in details:
                print(f"  {stage['stage']}: epochs {details['epochs']}, steps {details.get('steps')}, epoch losses {brief(stage['epoch_losses'])}, "
                      f"validation perplexity {brief(stage.get('validation_accuracies') or [])}")
        for gate in report["gates"]:
            p = "" if gate.get("p_value") is None else f" (p = {gate['p_value']:.4g})"
            print(f"  gate {'PASS' if gate['passed'] else 'FAIL'}: {gate['message']}{p}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"),
         sys.argv[2] if len(sys.argv) > 2 else "math")
