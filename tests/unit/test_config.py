"""The YAML + key=value config loader: types, overrides, and one error listing every problem."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from physio_ray.annotate.config import AnnotateConfig
from physio_ray.config import ConfigError, from_dict, load_config, parse_overrides, to_dict


@dataclass(frozen=True)
class Inner:
    batch: int = 4
    max_rollouts: int = 16

    def __post_init__(self) -> None:
        if not 1 <= self.batch <= self.max_rollouts:
            raise ValueError(f"batch={self.batch} must be in 1..max_rollouts ({self.max_rollouts})")


@dataclass(frozen=True)
class Outer:
    output_dir: str = "out"
    mode: Literal["adaptive", "full"] = "adaptive"
    ratio: float = 0.5
    names: list[str] = field(default_factory=list)
    limit: int | None = None
    inner: Inner = field(default_factory=Inner)


def test_defaults_and_types() -> None:
    cfg = from_dict(Outer, {"ratio": 1, "names": ["a", "b"], "limit": "3", "inner": {"batch": 2}})
    assert cfg == Outer(ratio=1.0, names=["a", "b"], limit=3, inner=Inner(batch=2))
    assert isinstance(cfg.ratio, float)


def test_every_problem_is_listed_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(
            Outer, {"outptu_dir": "x", "mode": "adaptiv", "inner": {"batch": 40, "max_rolouts": 3}, "ratio": "hi"}
        )
    problems = info.value.problems
    text = str(info.value)
    assert "outptu_dir: unknown key; did you mean 'output_dir'?" in text
    assert "mode: 'adaptiv' is not one of ['adaptive', 'full']; did you mean 'adaptive'?" in text
    assert "inner.max_rolouts: unknown key; did you mean 'max_rollouts'?" in text
    assert "ratio: expected a number, got 'hi'" in text
    assert len(problems) == 4


def test_post_init_errors_are_collected() -> None:
    with pytest.raises(ConfigError, match=r"inner: batch=40 must be in 1..max_rollouts \(16\)"):
        from_dict(Outer, {"inner": {"batch": 40}})


def test_overrides_merge_into_yaml(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("output_dir: a\ninner: {batch: 2, max_rollouts: 8}\n")
    cfg = load_config(Outer, [str(path), "inner.batch=8", "names=[x]", "limit=null"])
    assert cfg.inner == Inner(batch=8, max_rollouts=8)
    assert cfg.output_dir == "a" and cfg.names == ["x"] and cfg.limit is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "first argument must be a YAML config path"),
        (["missing.yaml"], "does not exist"),
        (["{yaml}", "novalue"], "is not of the form key=value"),
        (["{yaml}", "inner.nope=1"], "inner.nope: unknown key"),
    ],
)
def test_bad_command_lines(tmp_path: Path, argv: list[str], message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("output_dir: a\n")
    argv = [a.replace("{yaml}", str(path)) for a in argv]
    with pytest.raises(ConfigError, match=message):
        load_config(Outer, argv)


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="YAML syntax error"):
        load_config(Outer, [str(path)])


def test_parse_overrides_reads_yaml_scalars() -> None:
    assert parse_overrides(["a.b=1.5", "c=true", "d=s3://x/y"]) == {"a": {"b": 1.5}, "c": True, "d": "s3://x/y"}


def test_round_trip_of_the_annotate_config() -> None:
    cfg = from_dict(AnnotateConfig, {"montecarlo": {"max_rollouts": 8, "batch": 4}})
    again = from_dict(AnnotateConfig, to_dict(cfg))
    assert again == cfg


def test_annotate_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(
            AnnotateConfig,
            {"stages": ["poses", "polish"], "montecarlo": {"batch": 32}, "judge": {"confidence_threshold": 1.5}},
        )
    text = str(info.value)
    assert "montecarlo.batch=32 must be in 1..max_rollouts (16)" in text
    assert "judge.confidence_threshold=1.5 must be in 0..1" in text


def test_unknown_stage_is_named() -> None:
    with pytest.raises(ConfigError, match="stages has 'polish'; valid stages"):
        from_dict(AnnotateConfig, {"stages": ["poses", "polish"]})


def test_one_training_runtime_config_for_every_job() -> None:
    from physio_ray.train_runtime import LoraSettings, RunSettings, ScalingSettings

    s = from_dict(ScalingSettings, {"num_workers": 2, "use_gpu": True, "gpus_per_worker": 0.5, "resources": {"t": 1}})
    assert s.resources_per_worker() == {"CPU": 1.0, "GPU": 0.5, "t": 1.0} and s.threads() is None
    assert ScalingSettings(cpus_per_worker=2).threads() == 2 and ScalingSettings(torch_threads=1).threads() == 1
    with pytest.raises(ConfigError, match="scaling.resources must not name"):
        from_dict(ScalingSettings, {"resources": {"GPU": 1}})
    with pytest.raises(ConfigError, match="needs scaling.use_gpu"):
        from_dict(ScalingSettings, {"gpus_per_worker": 1})
    run = RunSettings(name="r", storage_path="s3://b/runs")
    assert run.storage("ignored") == "s3://b/runs"
    assert RunSettings(name="r").storage("out") == str(Path("out").resolve() / "ray_results")
    with pytest.raises(ValueError, match="no output_dir"):
        RunSettings(name="r").storage()
    with pytest.raises(ConfigError, match="run.name"):
        from_dict(RunSettings, {"name": "a/b"})
    peft = LoraSettings(r=4, alpha=8, modules_to_save=["lm_head"]).to_peft()
    assert (peft.r, peft.lora_alpha, peft.lora_dropout, set(peft.modules_to_save)) == (4, 8, 0.05, {"lm_head"})
    with pytest.raises(ConfigError, match="lora.dropout"):
        from_dict(LoraSettings, {"dropout": 1.0})


def test_training_jobs_share_the_same_blocks() -> None:
    from physio_ray.registry import config_class
    from physio_ray.train_runtime import RunSettings, ScalingSettings

    for job in ("train_prm", "train_spatial", "train_clinical"):
        hints = typing.get_type_hints(config_class(job))
        assert hints["scaling"] is ScalingSettings and hints["run"] is RunSettings, job


def test_one_lora_type_in_every_training_job(caplog: pytest.LogCaptureFixture) -> None:
    from physio_ray.prm.config import TextTowerConfig, TrainPRMConfig
    from physio_ray.registry import config_class
    from physio_ray.train_runtime import LoraSettings

    for job in ("train_spatial", "train_clinical"):
        assert typing.get_type_hints(config_class(job))["lora"] is LoraSettings, job
    assert typing.get_type_hints(TextTowerConfig)["lora"] is LoraSettings
    text = from_dict(
        TrainPRMConfig, {"model": {"text": {"mode": "lora", "lora": {"r": 4, "target_modules": ["q_proj"]}}}}
    )
    assert (text.model.text.lora.r, text.model.text.lora.alpha, text.model.text.lora.target_modules) == (
        4,
        16,
        ["q_proj"],
    )
    # the old flat keys still load (an older YAML or a saved checkpoint's config), with a warning
    with caplog.at_level("WARNING", logger="physio_ray.train_runtime"):
        old = from_dict(TextTowerConfig, {"lora_r": 16, "lora_alpha": 32, "lora_targets": ["q_proj", "v_proj"]})
    assert (old.lora.r, old.lora.alpha, old.lora.dropout, old.lora.target_modules) == (
        16,
        32,
        0.0,
        ["q_proj", "v_proj"],
    )
    assert old.lora_r is None and "'lora_r' is deprecated" in caplog.text and "'lora.r'" in caplog.text
    with pytest.raises(ConfigError, match="lora.r"):
        from_dict(TextTowerConfig, {"lora": {"r": 0}})
