"""Every config composes; bad keys, types and options fail at composition with the culprit named."""

from __future__ import annotations

from typing import Any

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from lottery_style.core.conf_dir import CONF_DIR
from lottery_style.core.config import ConfigError, DataConfig, HardwareConfig, LoggerConfig, PruningConfig
from lottery_style.data.images import DataError
from lottery_style.engine.validation import check_config
from lottery_style.models import MODEL_REGISTRY
from tests.conftest import TINY, compose_train

GROUPS = ["model", "pruning", "data", "hardware", "logger", "experiment", "debug"]


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g in GROUPS for o in group_options(g)], ids=lambda v: str(v)
)
def test_every_option_of_every_group_composes(group: str, option: str) -> None:
    cfg = compose_train([f"{group}={option}"])
    if group not in ("experiment", "debug"):  # both are global packages, not nodes of their own
        assert cfg[group] is not None


def test_the_debug_group_shrinks_any_preset_and_the_command_line_still_wins() -> None:
    """``debug`` comes last in train.yaml's defaults: a paper recipe at test size runs here (bundled images, CPU,
    no VGG file), and an option given on the command line overrides the test size too."""
    cfg = compose_train(["experiment=paper_sanet_imp", "debug=recipe", "training.steps=3"])
    assert (cfg.model.name, cfg.data.name, cfg.hardware.accelerator, cfg.model.encoder.path) == ("sanet", "sample", "cpu", None)
    assert (cfg.training.steps, cfg.data.crop_size, cfg.logger.name, cfg.pruning.rounds) == (3, 32, "csv", 12)
    assert compose_train(["debug=smallest"]).pruning.rounds == 1
    assert compose_train(["debug=tiny", "logger=wandb"]).logger.name == "wandb"


def leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in leaves(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


SCHEMAS = {"pruning": PruningConfig, "data": DataConfig, "logger": LoggerConfig, "hardware": HardwareConfig}


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in ("model", *SCHEMAS) for o in group_options(g)])
def test_a_group_file_says_only_what_differs_from_its_schema(group: str, option: str) -> None:
    """Each default has one home, the schema (dataclass): a group file that repeats one would go stale when the
    default changes, and the run id (which leaves defaults out) would no longer tell what a run computed."""
    schema = MODEL_REGISTRY[option].schema() if group == "model" else SCHEMAS[group]
    defaults = leaves(OmegaConf.to_container(OmegaConf.structured(schema), enum_to_str=True))
    written = OmegaConf.to_container(OmegaConf.load(CONF_DIR / group / f"{option}.yaml"))
    written.pop("defaults", None)
    assert {key: value for key, value in leaves(written).items() if defaults.get(key, object()) == value} == {}


def test_experiments_exist() -> None:
    assert group_options("experiment"), "conf/experiment/ has no recipes"


def first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0]


def test_misspelled_key_fails_naming_it() -> None:
    with pytest.raises((ConfigCompositionException, ConfigKeyError)) as error:
        compose_train(["training.stepz=3"])
    assert "stepz" in str(error.value)


def test_misspelled_model_key_fails_naming_it() -> None:
    with pytest.raises((ConfigCompositionException, ConfigKeyError)) as error:
        compose_train(["model.loss_weights.stlye=3"])
    assert "stlye" in str(error.value)


def test_wrong_type_fails_naming_the_value() -> None:
    with pytest.raises((ConfigCompositionException, ValidationError)) as error:
        compose_train(["pruning.rate=lots"])
    assert "lots" in str(error.value)


def test_unknown_enum_value_fails_naming_it() -> None:
    with pytest.raises((ConfigCompositionException, ValidationError)) as error:
        compose_train(["pruning.rewind=magic"])
    assert "magic" in str(error.value)


def test_unknown_group_option_fails_naming_it() -> None:
    with pytest.raises(MissingConfigException) as error:
        compose_train(["model=nosuchmodel"])
    assert "nosuchmodel" in first_line(error.value)


@pytest.mark.parametrize(
    ("overrides", "culprit"),
    [
        (["pruning.rate=1.5"], "pruning.rate=1.5"),
        (["pruning.sparsities=[0.5,0.3]"], "0.3"),
        (["pruning.rewind=step", "pruning.rewind_step=9"], "pruning.rewind_step=9"),
        (["pruning.rewind_step=2"], "pruning.rewind_step=2"),  # rewind=init uses no step
        (["pruning.method=magic"], "pruning.method=magic"),
        (["model.train_encoder=false"], "pruning.scope=['encoder', 'transform', 'decoder']"),
        (["model=lst", "model.train_decoder=false", "pruning.scope=[transform,decoder]"], "prunes decoder"),
        (["pruning=random_prune"], "pruning.method=random_prune is a branch of an IMP run"),
        (["pruning.source_run=/tmp"], "pruning.source_run=/tmp is for branches"),
        (["pruning.branches=[imp]"], "pruning.branches has 'imp'"),
        (["pruning=oneshot", "pruning.branches=[random_prune]"], "pruning.branches=['random_prune'] is for"),
        (["data.crop_size=64"], "data.crop_size=64"),
        (["data.eval_size=36"], "data.eval_size=36"),
        (["training.steps=0"], "training.steps=0"),
    ],
)
def test_cross_field_rules_fail_before_training(overrides: list[str], culprit: str) -> None:
    cfg = compose_train([*TINY, *overrides])
    with pytest.raises((ConfigError, DataError)) as error:
        check_config(cfg)
    assert culprit in first_line(error.value)
    assert len(str(error.value).splitlines()) == 1
