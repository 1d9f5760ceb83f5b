"""Data contracts between pipeline stages: column names and the stage that adds them.

Every stage reads and writes Parquet under ``<output_dir>/<stage>/``. Rows carry ids
(``video_id``, ``question_id``, ``solution_id``) and an ``error`` column: a row that fails
keeps flowing with ``error`` set instead of killing its batch. Nested values (landmarks,
option lists, per-step labels) are stored as Parquet lists; free-form dicts as JSON strings.
"""

from __future__ import annotations

# ---------------------------------------------------------------- shared
ERROR = "error"  # str | None: why this row could not be processed; None when fine

# The marker that ends every reasoning step (Med-PRM's convention, leading space included).
STEP_MARKER = " ки"

# Letters of multiple-choice options, in order ("A) ...", "B) ..."). Physio questions have
# N_OPTIONS of them (MCQ_LETTERS); Med-PRM's and other sources may have up to len(LETTERS).
LETTERS: tuple[str, ...] = tuple("ABCDEFGHIJ")
N_OPTIONS = 4
MCQ_LETTERS: tuple[str, ...] = LETTERS[:N_OPTIONS]

# ---------------------------------------------------------------- stage "sources" (inputs)
VIDEO_ID = "video_id"  # str: unique per recording, e.g. "uiprmd-m01-s01-e03-inc"
SOURCE_KIND = "source_kind"  # "video" | "uiprmd" | "keraal" | "tfjs" | "movenet"
SOURCE_PATH = "source_path"  # str: file the recording is read from
EXERCISE = "exercise"  # str: canonical exercise name (see physio_ray.video.exercises)
SUBJECT = "subject"  # str | None: subject id, used for subject-level splits
GROUND_TRUTH = "ground_truth"  # "correct" | "incorrect" | None: known execution quality

# ---------------------------------------------------------------- stage "poses"
FPS = "fps"  # float: frames per second of the landmark sequence
N_FRAMES = "n_frames"  # int
KEYPOINTS = "keypoints"  # list[float]: [n_frames * 17 * 4] COCO-17 (x, y, z, visibility), row-major
# x right, y down. "image" sources: x, y normalised to [0, 1], z NaN (2D only) or MediaPipe's
# relative depth; "world" sources: metres (y flipped to point down). Visibility in 0..1.
ASPECT = "aspect"  # float: frame width / height of image-space keypoints (1.0 for world3d)
COORD_SPACE = "coord_space"  # "image2d" | "image3d" | "world3d": which angle geometry applies
ANGLES = "angles"  # list[float]: [n_frames * 16] joint angles in degrees (NaN where not visible)

# ---------------------------------------------------------------- stage "keyframes"
KEYFRAME_INDICES = "keyframe_indices"  # list[int]
KEYFRAME_TIMES = "keyframe_times"  # list[float]: seconds
KEYFRAME_KINDS = "keyframe_kinds"  # list[str]: "start" | "bottom" | "top" | "transition" | "end"
FEATURES = "features"  # str: JSON dict of movement features (rep count, angle ranges, ...)

# ---------------------------------------------------------------- stage "questions"
QUESTION_ID = "question_id"  # str
QUESTION = "question"  # str: question stem
OPTIONS = "options"  # list[str]: exactly 4 option texts, without "A) " prefixes
ANSWER = "answer"  # str: "A" | "B" | "C" | "D"
ANSWER_SOURCE = "answer_source"  # "ground_truth" (dataset label) | "measured" (from landmarks)
TEMPLATE = "template"  # str: template id the question came from

# ---------------------------------------------------------------- stage "solutions"
SOLUTION_ID = "solution_id"  # str: f"{question_id}-s{k}"
SOLUTION_TEXT = "solution_text"  # str: raw model output
STEPS = "steps"  # list[str]: each step ending in STEP_MARKER
PREDICTED_ANSWER = "predicted_answer"  # str | None: "A".."D", None when unparseable
IS_CORRECT = "is_correct"  # bool

# ---------------------------------------------------------------- stage "judged"
JUDGE_LABELS = "judge_labels"  # list[int | None]: 1 correct, 0 incorrect, None abstain
JUDGE_CONFIDENCES = "judge_confidences"  # list[float]: 0..1 (0 for abstentions)
RETRIEVED_DOCS = "retrieved_docs"  # list[str]: ids of corpus passages given to the judge

# ---------------------------------------------------------------- stage "annotated"
MC_SCORES = "mc_scores"  # list[float | None]: fraction of correct rollouts (None: no MC)
MC_ROLLOUTS = "mc_rollouts"  # list[int]: rollouts actually sampled per step
LABELS = "labels"  # list[int]: final hard label per step
SOFT_LABELS = "soft_labels"  # list[float]: MC soft label where run, judge label otherwise
ANNOTATION_METHOD = "annotation_method"  # list[str]: "measurement" | "rag" | "mc_0.81" | "mc_reuse" | "solution"
# The judge's own verdicts stay in JUDGE_LABELS / JUDGE_CONFIDENCES beside the final LABELS.
# Measurement check per step ([] when the check is off; see physio_ray.annotate.measurement):
MEASUREMENT_VERDICTS = "measurement_verdicts"  # list[str]: "supported" | "contradicted" | "not_checkable"
MEASUREMENT_EVIDENCE = "measurement_evidence"  # list[str]: JSON per step {"verdict", "reason", "claims": [...]}

# ---------------------------------------------------------------- cost columns (any stage)
# Each stage that calls a model adds these per row; the ledger sums them per stage.
COST_CALLS = "cost_calls"  # int: model calls made for this row
COST_TOKENS_IN = "cost_tokens_in"  # int
COST_TOKENS_OUT = "cost_tokens_out"  # int
COST_SECONDS = "cost_seconds"  # float: wall seconds of model time attributed to this row
COST_ROLLOUTS = "cost_rollouts"  # int: MC rollouts sampled for this row

COST_COLUMNS = (COST_CALLS, COST_TOKENS_IN, COST_TOKENS_OUT, COST_SECONDS, COST_ROLLOUTS)
