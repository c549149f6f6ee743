"""Released reference checkpoints load through model.decoder.path / model.transform.path, bit for bit.

Each reference layout is rebuilt here with random weights, as a plain mirror of
the reference code's modules (module order and names as in the repositories
docs/architectures.md lists), saved as its ``state_dict`` the way the references save them,
and loaded through the config key.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from lottery_style.models.components.vgg import WeightsError
from lottery_style.tickets.identity import identity, run_id
from lottery_style.train import train
from tests.conftest import TINY, compose_train, tiny_model

# (in, out) of the standard decoder's convs; "up" is x2 nearest (docs/architectures.md, The decoder).
DECODER_PLAN = ((512, 256), "up", (256, 256), (256, 256), (256, 256), (256, 128), "up", (128, 128), (128, 64), "up", (64, 64), (64, 3))


def reference_decoder() -> nn.Sequential:
    """naoto0804/pytorch-AdaIN's ``decoder`` (also SANet, MANet, MCCNet): a bare nn.Sequential."""
    layers: list[nn.Module] = []
    for step in DECODER_PLAN:
        if step == "up":
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        else:
            layers += [nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(*step, (3, 3)), nn.ReLU()]
    return nn.Sequential(*layers[:-1])  # no ReLU after the last conv


class InOrder(nn.Module):
    """A reference module whose forward runs its children in registration order (LST's decoder4)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for child in self.children():
            x = child(x)
        return x


def lst_decoder4() -> InOrder:
    """sunshineatnoon/LinearStyleTransfer ``decoder4``: reflecPad11, conv11, relu11, unpool, ... conv19."""
    module, number, unpools = InOrder(), 11, ["unpool", "unpool2", "unpool3"]
    for step in DECODER_PLAN:
        if step == "up":
            setattr(module, unpools.pop(0), nn.UpsamplingNearest2d(scale_factor=2))
            continue
        setattr(module, f"reflecPad{number}", nn.ReflectionPad2d((1, 1, 1, 1)))
        setattr(module, f"conv{number}", nn.Conv2d(*step, 3, 1, 0))
        if number < 19:
            setattr(module, f"relu{number}", nn.ReLU(inplace=True))
        number += 1
    return module


class AttentionBlock(nn.Module):
    """SANet's ``SANet`` / MANet's ``CA``, ``Content_SA``, ``Style_SA`` / MCCNet's ``MCCNet``: f, g, h, out_conv."""

    def __init__(self, channels: int = 512, fc: bool = False):
        super().__init__()
        self.f, self.g, self.h = (nn.Conv2d(channels, channels, (1, 1)) for _ in range(3))
        self.sm = nn.Softmax(dim=-1)
        self.out_conv = nn.Conv2d(channels, channels, (1, 1))
        if fc:
            self.fc = nn.Linear(channels, channels)


class SANetTransform(nn.Module):
    """GlebSBrykin/SANET ``Transform``."""

    def __init__(self):
        super().__init__()
        self.sanet4_1, self.sanet5_1 = AttentionBlock(), AttentionBlock()
        self.upsample5_1 = nn.Upsample(scale_factor=2, mode="nearest")
        self.merge_conv_pad = nn.ReflectionPad2d((1, 1, 1, 1))
        self.merge_conv = nn.Conv2d(512, 512, (3, 3))


class MultiAdaptation(nn.Module):
    """MANet's ``Multi_Adaptation_Module``."""

    def __init__(self):
        super().__init__()
        self.CA, self.CSA, self.SSA = AttentionBlock(), AttentionBlock(), AttentionBlock()


class MCCModule(nn.Module):
    """MCCNet's ``MCC_Module`` holding ``MCCN`` (with the dead conv h)."""

    def __init__(self):
        super().__init__()
        self.MCCN = AttentionBlock(fc=True)


class CovarianceCNN(nn.Module):
    """LST's ``CNN('r41')``."""

    def __init__(self):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(512, 256, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(256, 128, 3, 1, 1), nn.ReLU(inplace=True),
            nn.Conv2d(128, 32, 3, 1, 1),
        )  # fmt: skip
        self.fc = nn.Linear(32 * 32, 32 * 32)


class MulLayer(nn.Module):
    """LST's ``MulLayer('r41')`` (r41.pth)."""

    def __init__(self):
        super().__init__()
        self.snet, self.cnet = CovarianceCNN(), CovarianceCNN()
        self.compress, self.unzip = nn.Conv2d(512, 32, 1, 1, 0), nn.Conv2d(32, 512, 1, 1, 0)


class AdaAttNBlock(nn.Module):
    """Huage001/AdaAttN ``networks.AdaAttN``: f, g on the keys, h on the raw style features (no output conv)."""

    def __init__(self, in_planes: int, key_planes: int):
        super().__init__()
        self.f, self.g = nn.Conv2d(key_planes, key_planes, (1, 1)), nn.Conv2d(key_planes, key_planes, (1, 1))
        self.h = nn.Conv2d(in_planes, in_planes, (1, 1))
        self.sm = nn.Softmax(dim=-1)


class AdaAttNTransformer(nn.Module):
    """Huage001/AdaAttN ``networks.Transformer(in_planes=512, key_planes=960, shallow_layer=True)``."""

    def __init__(self):
        super().__init__()
        self.attn_adain_4_1 = AdaAttNBlock(512, 512 + 256 + 128 + 64)
        self.attn_adain_5_1 = AdaAttNBlock(512, 512 + 256 + 128 + 64 + 512)
        self.upsample5_1 = nn.Upsample(scale_factor=2, mode="nearest")
        self.merge_conv_pad = nn.ReflectionPad2d((1, 1, 1, 1))
        self.merge_conv = nn.Conv2d(512, 512, (3, 3))


class AdaAttNDecoder(nn.Module):
    """Huage001/AdaAttN ``networks.Decoder(skip_connection_3=True)``: the relu3_1 skip joins decoder_layer_2."""

    def __init__(self):
        super().__init__()
        standard = list(reference_decoder().children())
        self.decoder_layer_1 = nn.Sequential(*standard[:4])
        self.decoder_layer_2 = nn.Sequential(nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(256 + 256, 256, (3, 3)), *standard[6:])

    def forward(self, cs: torch.Tensor, c_adain_3_feat: torch.Tensor) -> torch.Tensor:
        return self.decoder_layer_2(torch.cat((self.decoder_layer_1(cs), c_adain_3_feat), dim=1))


def saved(module: nn.Module, path: Path) -> Path:
    torch.manual_seed(7)
    for param in module.parameters():
        nn.init.normal_(param)  # distinct values everywhere, biases included
    torch.save(module.state_dict(), path)
    return path


def assert_same(reference: nn.Module, ours: nn.Module, names: dict[str, str]) -> None:
    """Every parameter of ours equals its reference counterpart bit for bit, and none is left out."""
    theirs, mine = dict(reference.named_parameters()), dict(ours.named_parameters())
    assert set(names.values()) == set(mine)
    for reference_name, our_name in names.items():
        assert torch.equal(theirs[reference_name], mine[our_name]), (reference_name, our_name)


def attention_names(reference: str, ours: str) -> dict[str, str]:
    pairs = {"f": "query", "g": "key", "h": "value", "out_conv": "output"}
    return {f"{reference}.{t}.{p}": f"{ours}.{m}.{p}" for t, m in pairs.items() for p in ("weight", "bias")}


@pytest.mark.parametrize("name", ["adain", "sanet", "manet", "mccnet"])
def test_standard_decoder_file_loads_bit_exactly(name: str, tmp_path: Path) -> None:
    reference = reference_decoder()
    model = tiny_model(name, decoder={"path": str(saved(reference, tmp_path / "decoder.pth"))})
    features = torch.randn(1, 512, 4, 4)
    assert torch.equal(model.decoder(features), reference(features))
    assert_same(reference, model.decoder, {k: f"body.{k}" for k, _ in reference.named_parameters()})


def test_sanet_transformer_file_loads_bit_exactly(tmp_path: Path) -> None:
    reference = SANetTransform()
    model = tiny_model("sanet", transform={"path": str(saved(reference, tmp_path / "transformer_iter_500000.pth"))})
    names = {**attention_names("sanet4_1", "attention4"), **attention_names("sanet5_1", "attention5")}
    names.update({"merge_conv.weight": "merge.1.weight", "merge_conv.bias": "merge.1.bias"})
    assert_same(reference, model.transform, names)


def test_manet_transform_file_loads_bit_exactly(tmp_path: Path) -> None:
    reference = MultiAdaptation()
    model = tiny_model("manet", transform={"path": str(saved(reference, tmp_path / "ma_module.pth"))})
    names = {
        **attention_names("CSA", "content_attention"),
        **attention_names("SSA", "style_attention"),
        **attention_names("CA", "co_attention"),
    }
    assert_same(reference, model.transform, names)


@pytest.mark.parametrize("include_unused_conv", [False, True])
def test_mccnet_transform_file_loads_bit_exactly(include_unused_conv: bool, tmp_path: Path) -> None:
    reference = MCCModule()
    path = saved(reference, tmp_path / "mcc_module.pth")
    model = tiny_model("mccnet", include_unused_conv=include_unused_conv, transform={"path": str(path)})
    names = {f"MCCN.{t}.{p}": f"{m}.{p}" for t, m in (("f", "f"), ("g", "g"), ("out_conv", "o"), ("fc", "fc")) for p in ("weight", "bias")}
    if include_unused_conv:
        names.update({"MCCN.h.weight": "h.weight", "MCCN.h.bias": "h.bias"})
    assert_same(reference, model.transform, names)


def test_lst_decoder_and_transform_files_load_bit_exactly(tmp_path: Path) -> None:
    decoder, transform = lst_decoder4(), MulLayer()
    model = tiny_model(
        "lst",
        decoder={"path": str(saved(decoder, tmp_path / "dec_r41.pth"))},
        transform={"path": str(saved(transform, tmp_path / "r41.pth"))},
    )
    features = torch.randn(1, 512, 4, 4)
    assert torch.equal(model.decoder(features), decoder(features))
    names = {k: k.replace("snet.", "style_net.").replace("cnet.", "content_net.") for k, _ in transform.named_parameters()}
    assert_same(transform, model.transform, names)


def adaattn_files(folder: Path) -> tuple[Path, Path, Path]:
    """The reference's three checkpoints as its save_networks writes them: ``latest_net_<name>.pth``."""
    folder.mkdir(exist_ok=True)
    transformer = saved(AdaAttNTransformer(), folder / "latest_net_transformer.pth")
    skip = saved(AdaAttNBlock(256, 256 + 128 + 64), folder / "latest_net_adaattn_3.pth")
    return transformer, skip, saved(AdaAttNDecoder(), folder / "latest_net_decoder.pth")


def test_adaattn_transformer_with_its_skip_block_and_decoder_files_load_bit_exactly(tmp_path: Path) -> None:
    transformer_file, skip_file, decoder_file = adaattn_files(tmp_path)
    model = tiny_model("adaattn", transform={"path": str(transformer_file)}, decoder={"path": str(decoder_file)})
    released = nn.Module()
    released.transformer, released.skip = AdaAttNTransformer(), AdaAttNBlock(256, 448)
    released.transformer.load_state_dict(torch.load(transformer_file, weights_only=True))
    released.skip.load_state_dict(torch.load(skip_file, weights_only=True))
    projections = (("f", "query"), ("g", "key"), ("h", "value"))
    names = {f"{theirs}.{t}.{p}": f"{ours}.{m}.{p}" for theirs, ours in (("skip", "a3"), ("transformer.attn_adain_4_1", "a4"),
             ("transformer.attn_adain_5_1", "a5")) for t, m in projections for p in ("weight", "bias")}  # fmt: skip
    names.update({"transformer.merge_conv.weight": "merge.1.weight", "transformer.merge_conv.bias": "merge.1.bias"})
    assert_same(released, model.transform, names)
    decoder = AdaAttNDecoder()
    decoder.load_state_dict(torch.load(decoder_file, weights_only=True))
    features, skip = torch.randn(1, 512, 4, 4), torch.randn(1, 256, 8, 8)
    assert torch.equal(model.decoder(features, skip), decoder(features, skip))
    layers = {"decoder_layer_1": "head", "decoder_layer_2": "tail"}
    assert_same(decoder, model.decoder, {k: f"{layers[k.split('.')[0]]}.{k.split('.', 1)[1]}" for k, _ in decoder.named_parameters()})


def test_a_wrong_adaattn_file_is_refused_in_one_line(tmp_path: Path) -> None:
    transformer_file, skip_file, decoder_file = adaattn_files(tmp_path)
    with pytest.raises(WeightsError) as error:  # the decoder given as the transform
        tiny_model("adaattn", transform={"path": str(decoder_file)})
    assert str(error.value) == (f"model.transform.path={decoder_file} is not named <epoch>_net_transformer.pth: expected "
                                "Huage001/AdaAttN <epoch>_net_transformer.pth (attn_adain_4_1, attn_adain_5_1, merge_conv) "
                                "with <epoch>_net_adaattn_3.pth (f, g, h) beside it")  # fmt: skip
    renamed = tmp_path / "other"
    renamed.mkdir()
    decoder_file.rename(renamed / "latest_net_transformer.pth")  # a decoder saved under the transformer's name
    with pytest.raises(WeightsError) as error:
        tiny_model("adaattn", transform={"path": str(renamed / "latest_net_transformer.pth")})
    assert "\n" not in str(error.value)
    assert str(error.value).startswith(f"{renamed / 'latest_net_adaattn_3.pth'}, the file beside model.transform.path, does not exist")
    skip_file.rename(renamed / "latest_net_adaattn_3.pth")
    with pytest.raises(WeightsError) as error:
        tiny_model("adaattn", transform={"path": str(renamed / "latest_net_transformer.pth")})
    message = str(error.value)
    assert "\n" not in message and " does not fit Huage001/AdaAttN <epoch>_net_transformer.pth" in message
    assert "missing keys attn_adain_4_1.f.weight, attn_adain_4_1.f.bias, attn_adain_4_1.g.weight (+11 more)" in message
    assert "unexpected keys decoder_layer_1.1.weight, decoder_layer_1.1.bias, decoder_layer_2.1.weight (+15 more)" in message
    with pytest.raises(WeightsError, match=r"^model.decoder.path=.* does not fit Huage001/AdaAttN <epoch>_net_decoder.pth"):
        tiny_model("adaattn", decoder={"path": str(transformer_file)})


def test_a_file_of_another_layout_is_refused_in_one_line(tmp_path: Path) -> None:
    path = saved(lst_decoder4(), tmp_path / "dec_r41.pth")
    with pytest.raises(WeightsError) as error:
        tiny_model("adain", decoder={"path": str(path)})
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"model.decoder.path={path} does not fit naoto0804/pytorch-AdaIN decoder.pth")
    assert "missing keys 1.weight, 1.bias, 5.weight (+15 more)" in message
    assert "unexpected keys conv11.weight, conv11.bias, conv12.weight (+15 more)" in message
    with pytest.raises(WeightsError, match=r"model.transform.path=.* does not fit GlebSBrykin/SANET"):
        tiny_model("sanet", transform={"path": str(path)})
    with pytest.raises(WeightsError, match=r"no reference releases this part"):
        tiny_model("adain", transform={"path": str(path)})


def test_the_file_is_result_defining_and_checked_before_training(tmp_path: Path) -> None:
    path = saved(MulLayer(), tmp_path / "r41.pth")  # a transform, given as AdaIN's decoder
    plain = compose_train(TINY, tmp_path / "run")
    cfg = compose_train([*TINY, f"model.decoder.path={path}"], tmp_path / "run")
    assert identity(cfg)["model.decoder.path"] == str(path)
    assert run_id(_root_=cfg) != run_id(_root_=plain)
    with pytest.raises(WeightsError, match="unexpected keys snet"):
        train(cfg)
    assert not list((tmp_path / "run").glob("round_*"))


def test_rewinding_to_init_rewinds_to_the_released_weights_and_tickets_stylize_without_the_file(tmp_path: Path) -> None:
    from lottery_style.tickets.loading import load_ticket
    from lottery_style.tickets.storage import load_rewind_point

    reference = reference_decoder()
    path = saved(reference, tmp_path / "decoder.pth")
    run_dir = tmp_path / "run"
    train(compose_train([*TINY, "training.steps=2", "pruning.rounds=1", f"model.decoder.path={path}"], run_dir))
    rewind_point = load_rewind_point(run_dir)
    for name, param in reference.named_parameters():
        assert torch.equal(rewind_point[f"decoder.body.{name}"], param)  # round 0 started from the release
    path.unlink()  # a ticket holds its weights: stylizing it reads no released file
    model, _ = load_ticket(run_dir / "round_01")
    assert model.stylize(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)
