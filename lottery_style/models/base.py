"""The LightningModule every architecture extends.

An architecture only says what differs: its transform, its decoder if not the
standard mirror, how it stylizes and which loss terms it has. Everything the
lottery engine relies on lives here once: the trainable encoder ("+" models),
the frozen loss VGG kept apart from it so that training the encoder cannot
game its own loss, the optimizer with the references' inverse LR decay, the
weighted loss, the test error E of the paper and the prunable weights grouped
by part.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import torch
from lightning.pytorch import LightningModule
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn
from torchmetrics.functional.image import structural_similarity_index_measure

from lottery_style.core.config import PARTS
from lottery_style.core.metrics import METRICS
from lottery_style.models.components.caffe_vgg import Calibration
from lottery_style.models.components.decoder import MirrorDecoder
from lottery_style.models.components.released import RELEASED_PARTS, ReferenceLayout, load_released, sequential_decoder
from lottery_style.models.components.structure import structure_score
from lottery_style.models.components.vgg import VGGEncoder
from lottery_style.models.components.weight_sources import build_encoder, resolve_weight_source


def conv_weights(module: nn.Module) -> list[str]:
    """The weight names of ``module``'s convs in registration order (the forward order of a sequential body)."""
    return [f"{name}.weight" for name, layer in module.named_modules() if isinstance(layer, nn.Conv2d)]


def chain_links(names: list[str]) -> dict[str, list[str]]:
    """Each conv of a sequential chain feeds the next one."""
    return {a: [b] for a, b in itertools.pairwise(names)}


class Losses(NamedTuple):
    """Unweighted per-sample loss terms (each ``[B]``) and the stylized batch they were computed on."""

    terms: dict[str, Tensor]
    stylized: Tensor


def is_full_style(alpha: float | Tensor) -> bool:
    """Whether ``alpha`` is the float 1.0, so that ``stylize`` may skip the blend's content side.

    A tensor ``alpha`` is an exported graph's input (``lottery-style export --format onnx``): its value is unknown when the graph is
    traced, so the graph must compute the blend for every value and the shortcut is never taken.
    """
    return not isinstance(alpha, Tensor) and alpha == 1.0


class StyleTransferModule(LightningModule):
    """Encoder -> transform -> decoder, trained on content/style pairs.

    Subclasses set ``encoder_depth`` (relu levels the encoder extracts),
    ``loss_depth`` (relu levels of the loss VGG) and the error groups, and
    implement :meth:`build_transform`, :meth:`stylize` and :meth:`losses`.
    """

    encoder_depth: ClassVar[int] = 4
    loss_depth: ClassVar[int] = 4
    # Which loss terms add up to the paper's E_content and E_style (docs/architectures.md, The lottery paper).
    content_error_terms: ClassVar[tuple[str, ...]] = ("content",)
    style_error_terms: ClassVar[tuple[str, ...]] = ("style",)
    # Image sides must be multiples of this (8 = three x2 poolings; 16 when relu5_1 feeds the transform).
    size_multiple: ClassVar[int] = 8
    # The reference's released decoder file when it is the standard nn.Sequential (see reference_layout).
    reference_decoder: ClassVar[str | None] = None
    # Loss terms the reference sums over the batch where the others are averaged (see weighted_loss).
    batch_summed_terms: ClassVar[tuple[str, ...]] = ()
    # Why pruning.granularity=channel cannot run on this architecture (None: it can): the config check refuses it in
    # one line naming the model and this reason, before anything is built.
    channel_refusal: ClassVar[str | None] = None
    # What keeps a traced graph (``lottery-style export --format onnx``) from computing what ``stylize`` computes;
    # None: nothing does.
    export_blocker: ClassVar[str | None] = None

    def __init__(self, cfg: DictConfig | Mapping[str, Any]):
        super().__init__()
        cfg = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(dict(cfg))
        self.cfg = cfg
        self.save_hyperparameters({"model": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)})
        self.weight_source = resolve_weight_source(cfg.encoder.weights, cfg.encoder.path)
        self.encoder, self.loss_net = self._build_vggs()
        self.transform = self.build_transform()
        self.decoder = self.build_decoder()
        for part in RELEASED_PARTS:
            path = OmegaConf.select(cfg, f"{part}.path")
            if path:
                load_released(getattr(self, part), self.reference_layout(part), f"model.{part}.path", path)
        self.loss_weights: dict[str, float] = dict(cfg.loss_weights)
        # Where this fit reads the LR schedule (lottery_style/engine/rewinding.py): from step ``lr_from`` on,
        # or held at it (fine-tuning keeps the LR where the dense training ended).
        self.lr_from = 0
        self.lr_hold = False

    @classmethod
    def frozen_parts(cls, cfg: DictConfig) -> set[str]:
        """Parts the optimizer never updates under ``cfg``: they cannot retrain after pruning.

        A classmethod, so the config check refuses them in ``pruning.scope``
        before any model is built.
        """
        return set() if cfg.train_encoder else {"encoder"}

    # ----------------------------------------------------------- architecture
    def _build_vggs(self) -> tuple[VGGEncoder, VGGEncoder | None]:
        """The encoder and, when it differs from it, a frozen loss VGG with the same starting weights."""
        depth = max(self.encoder_depth, self.loss_depth)
        enc = self.cfg.encoder
        calibration = Calibration(enc.calibration_dir, enc.calibration_size)
        full = build_encoder(self.weight_source, depth, enc.path, enc.ceil_mode, calibration)
        encoder = self._truncated(full, self.encoder_depth)
        if not self.cfg.train_encoder:
            encoder.requires_grad_(False)
            if self.loss_depth == self.encoder_depth:
                return encoder, None  # frozen encoder is the loss net, exactly as the references
        loss_net = self._truncated(full, self.loss_depth).requires_grad_(False)
        return encoder, loss_net

    def _truncated(self, full: VGGEncoder, depth: int) -> VGGEncoder:
        vgg = VGGEncoder(full.layout, depth, self.cfg.encoder.ceil_mode)
        vgg.load_layout_state_dict(full.body.state_dict(), "the shared VGG")
        return vgg

    def build_transform(self) -> nn.Module:
        """The feature transformation module (an empty container when parameter-free)."""
        raise NotImplementedError

    def build_decoder(self) -> nn.Module:
        return MirrorDecoder(level=4)

    def reference_layout(self, part: str) -> ReferenceLayout | None:
        """How the reference repository names ``part`` in its released file (None: no loadable release).

        Here the decoder: the AdaIN-family references save the standard decoder as a bare
        ``nn.Sequential`` in the same module order as :class:`MirrorDecoder` (docs/architectures.md, The decoder).
        Architectures with a learned transform add its layout.
        """
        if part == "decoder" and self.reference_decoder:
            return sequential_decoder(self.reference_decoder)
        return None

    def check_size(self, image: Tensor, role: str) -> None:
        """Fail in one line on an image whose sides are not multiples of ``size_multiple``, before any compute."""
        height, width = image.shape[-2:]
        if height % self.size_multiple or width % self.size_multiple:
            raise ValueError(
                f"{type(self).__name__} needs image height and width divisible by {self.size_multiple}, "
                f"got a {role} image of {height}x{width}"
            )

    def stylize(self, content: Tensor, style: Tensor, alpha: float | Tensor = 1.0) -> Tensor:
        """Images in [0,1] -> stylized image (unclamped); ``alpha`` blends with the content features.

        ``alpha`` is a float, or a 0-d tensor when the forward is traced for export with alpha as a graph input
        (see :func:`is_full_style`).
        """
        raise NotImplementedError

    def losses(self, content: Tensor, style: Tensor) -> Losses:
        """Every unweighted loss term per sample, named as in the model's ``loss_weights``."""
        raise NotImplementedError

    def loss_features(self, image: Tensor) -> list[Tensor]:
        """Features of the frozen loss VGG (relu1_1 .. relu``loss_depth``_1)."""
        net = self.loss_net if self.loss_net is not None else self.encoder
        return net(image)

    # ---------------------------------------------------------------- pruning
    def prunable_weights(self) -> dict[str, dict[str, nn.Parameter]]:
        """Conv/linear weights by part, keyed by their name in ``named_parameters``.

        Biases, norm parameters and the fixed 1x1 input conv are left out: they
        are a negligible share of the weights and pruning the input conv would
        break the input normalisation.
        """
        fixed = {f"encoder.{name}" for name in self.encoder.fixed_parameter_names}
        groups: dict[str, dict[str, nn.Parameter]] = {part: {} for part in PARTS}
        for part in PARTS:
            for name, param in getattr(self, part).named_parameters():
                full_name = f"{part}.{name}"
                if param.dim() > 1 and name.endswith("weight") and full_name not in fixed:
                    groups[part][full_name] = param
        return groups

    def fixed_channels(self) -> set[str]:
        """Prunable weights whose output channels are never pruned at ``pruning.granularity=channel``.

        The decoder's last conv writes the RGB image: its three channels are the
        output. An architecture adds the convs whose output channels must stay in
        step with others (residual adds, attention query/key pairs) or feed an
        operation that does not keep a zero channel zero.
        """
        return {self.decoder_convs()[-1]}

    def channel_links(self) -> dict[str, list[str]]:
        """For each prunable conv, the convs whose input channels are its output channels, read directly.

        "Directly" means through operations that keep an all-zero channel all
        zero (ReLU, padding, pooling, nearest upsampling, AdaIN of a zero channel),
        so the slices of those convs that read a pruned channel are dead weights.
        The default: consecutive convs of the encoder's and the decoder's
        sequential bodies (:meth:`body_links`), and the encoder's last conv into
        the decoder's first (AdaIN's path); an architecture with a learned
        transform says its own.
        """
        links = self.body_links()
        links.setdefault(self.encoder_convs()[-1], []).append(self.decoder_convs()[0])
        return links

    def encoder_convs(self) -> list[str]:
        return [f"encoder.{name}" for name in conv_weights(self.encoder)]

    def decoder_convs(self) -> list[str]:
        return [f"decoder.{name}" for name in conv_weights(self.decoder)]

    def body_links(self) -> dict[str, list[str]]:
        """Consecutive convs of the encoder's and the decoder's sequential bodies."""
        return chain_links(self.encoder_convs()) | chain_links(self.decoder_convs())

    # --------------------------------------------------------------- training
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        terms = self.losses(batch["content"], batch["style"]).terms
        loss = self.weighted_loss(terms)
        self.log_dict({f"train/{name}": value.mean() for name, value in terms.items()})
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def weighted_loss(self, terms: Mapping[str, Tensor]) -> Tensor:
        """The training loss: each per-sample term reduced over the batch as its reference does, then weighted.

        A term is averaged over the batch (``nn.MSELoss``'s reduction) unless
        it is in :attr:`batch_summed_terms`, which a reference sums over the
        batch: its weight relative to the other terms then grows with the
        batch size, as in the reference. Under DDP each rank reduces its own
        local batch and the gradients are averaged over ranks, so a summed
        term weighs as the reference's at the per-rank ``data.batch_size``.
        The logged ``train/<term>`` values stay per-sample means.
        """
        unknown = set(terms) - set(self.loss_weights)
        if unknown:
            raise KeyError(f"loss terms {sorted(unknown)} have no weight in model.loss_weights")
        summed = self.batch_summed_terms
        return sum(self.loss_weights[name] * (value.sum() if name in summed else value.mean()) for name, value in terms.items())

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def configure_optimizers(self) -> dict[str, Any]:
        opt_cfg = self.cfg.optimizer
        params = self.trainable_parameters()
        name = str(getattr(opt_cfg.name, "value", opt_cfg.name))
        # The fused kernels apply the same update in one pass per tensor, without the default loop's
        # temporaries: Adam's step on 8.8M weights takes 12 ms instead of 35 ms on this project's CPU.
        fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
        if name == "adam":
            optimizer = torch.optim.Adam(params, lr=opt_cfg.lr, weight_decay=opt_cfg.weight_decay, fused=fused)
        elif name == "adamw":
            optimizer = torch.optim.AdamW(params, lr=opt_cfg.lr, weight_decay=opt_cfg.weight_decay, fused=fused)
        elif name == "sgd":
            optimizer = torch.optim.SGD(
                params, lr=opt_cfg.lr, momentum=opt_cfg.momentum, weight_decay=opt_cfg.weight_decay, fused=fused
            )
        else:
            raise ValueError(f"model.optimizer.name={name!r} is unknown: expected adam, adamw or sgd")
        decay, start, hold = float(opt_cfg.lr_decay), self.lr_from, self.lr_hold
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 1.0 / (1.0 + decay * (start + (0 if hold else step)))
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------- evaluation
    @torch.no_grad()
    def test_errors(self, content: Tensor, style: Tensor) -> dict[str, Tensor]:
        """The paper's per-pair errors: E_content, E_style, E = sum; plus SSIM(output, content), the content
        structure the output keeps (:mod:`lottery_style.models.components.structure`), which E does not see, every
        registered metric's ``compute`` and the architecture's :meth:`own_metrics`."""
        result = self.losses(content, style)
        e_content = sum(result.terms[name] for name in self.content_error_terms)
        e_style = sum(result.terms[name] for name in self.style_error_terms)
        ssim = structural_similarity_index_measure(
            result.stylized.clamp(0, 1).float(), content.float(), data_range=1.0, reduction="none"
        )
        structure = structure_score(content, result.stylized)
        errors = {"E_content": e_content, "E_style": e_style, "E": e_content + e_style, "ssim": ssim, "structure": structure}
        every_models = {m.name: m.compute(content, style, result.stylized) for m in METRICS.values() if m.compute}
        return {**errors, **every_models, **self.own_metrics(content, style, result.stylized)}

    def own_metrics(self, content: Tensor, style: Tensor, stylized: Tensor) -> dict[str, Tensor]:
        """Per-pair values (each ``[B]``) of the metrics this architecture contributes, each declared with
        ``core.metrics.register_metric``; none by default."""
        return {}


class Stylizer(nn.Module):
    """``model.stylize`` as a module's forward, for tools that call ``forward``: torch's ONNX exporter (alpha
    as a tensor input) and :func:`torch.func.functional_call` (FLOPs with a slim model's weights swapped in)."""

    def __init__(self, model: StyleTransferModule):
        super().__init__()
        self.model = model

    def forward(self, content: Tensor, style: Tensor, alpha: float | Tensor = 1.0) -> Tensor:
        return self.model.stylize(content, style, alpha)
