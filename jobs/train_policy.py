"""Teach the local policy (SmolLM2-135M) to answer the physiotherapy questions from their measurements.

Issue 12 asks for a policy worth annotating: asked cold, SmolLM2-135M picks the right option with
probability 0.250 (benchmarks/probe_policy.py). This job fine-tunes a LoRA adapter on reference
solutions (physio_ray.annotate.reference_solutions: step 1 quotes the measurement, step 2 names
its band, the last step restates the right option with its [letter] tag, then "Answer: X") written for the template questions of the training subjects, with
the sampler's own prompt. It then samples the held-out subjects' questions (every template,
rep counts included) with the trained and the untrained model, as the annotation job samples,
beside the constant baselines (majority letter, per-template majority option).

Input: a question-stage output, written by
  python jobs/annotate.py configs/annotate/policy_questions.yaml     (~2 min, 4374 questions)
Output, in output_dir:
  adapter/            the LoRA adapter; an annotation run samples with it given
                      sampler.engine.adapter=DIR (and montecarlo.engine.adapter=DIR)
  policy_eval.json    held-out accuracy and mixed-question share, with 95% intervals, beside the
                      untrained model and the constant answers, and every question's outcomes
  policy_loss.png     the loss curve
One Ray Train worker (scaling:). The local YAML trains within a time budget on 2 CPU cores (~70 min
in all); cluster.yaml trains every option rotation for three epochs on one GPU worker.
The adapter in models/policy-smollm2-135m-lora/ (which configs/annotate/local.yaml samples with)
came from configs/train_policy/local.yaml: held-out accuracy 0.508 vs 0.234 untrained and 0.594
for the per-template shortcut (its README.md; README, "Teaching the policy").
"""

from __future__ import annotations

import sys

from _common import check_cluster, fail, parse

from physio_ray.policy.config import TrainPolicyConfig
from physio_ray.runtime import init_ray

EPILOG = """config keys (YAML or key=value overrides):
  questions_dir=DIR  output_dir=DIR  held_out_subjects=[uiprmd-s09,uiprmd-s10]  rotations=1
  sft.learning_rate=5e-4 sft.epochs=1 sft.batch_size=4 sft.max_steps=N sft.max_seconds=S sft.bf16=true
  sft.lora.r=8 sft.lora.layers=[15,...,29]  eval.n=4 eval.temperature=0.8 eval.max_questions=N
  scaling.use_gpu=false scaling.cpus_per_worker=2  run.name=policy

examples:
  python jobs/annotate.py configs/annotate/policy_questions.yaml
  python jobs/train_policy.py configs/train_policy/local.yaml
  python jobs/train_policy.py configs/train_policy/local.yaml sft.max_seconds=600 eval.max_questions=8
  ray job submit --working-dir . -- python jobs/train_policy.py configs/train_policy/cluster.yaml
"""


def main(argv: list[str]) -> None:
    cfg = parse(TrainPolicyConfig, argv, __doc__ or "", EPILOG)
    check_cluster(cfg)
    from physio_ray.policy.loop import question_files, render_policy_eval, run_train_policy

    try:
        question_files(cfg.questions_dir)  # before Ray starts: missing data is a usage error
    except FileNotFoundError as exc:
        fail(str(exc), 2)
    init_ray(cfg.ray)
    summary = run_train_policy(cfg)
    print(render_policy_eval(summary))
    print(f"wrote {summary['output_dir']}/adapter, policy_eval.json, policy_loss.png")


if __name__ == "__main__":
    main(sys.argv[1:])
