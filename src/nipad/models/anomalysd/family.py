"""The "anomalysd" model family: `nipad train --model anomalysd --shots K --sd-model PATH`, and loading its runs.

Run directory: config.json ("family": "anomalysd", the SD model's path, the inference and fine-tuning settings,
the prompts of every class), model.safetensors (only what fine-tuning changed: the UNet, the VAE decoder when it
was tuned, and the k shots per class that rebuild the prototype banks and the class pool; absent for k = 0, where
the pretrained model runs as it is) and calibration.json (thresholds from the shots themselves: a few-shot run
holds out no normal image, so `nipad calibrate` on more normal images gives better ones). While fine-tuning,
train_state.pt lets the same command resume an interrupted run (anomalysd/resume.py). Each file's hash is in
manifest.json (nipad.engine.integrity), checked when it is read.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from nipad import __version__
from nipad.data import load_image
from nipad.data.sample import Sample
from nipad.engine import integrity
from nipad.engine.calibration import calibrate
from nipad.errors import CheckpointError, ConfigError, NipadError
from nipad.models.anomalysd.config import MODEL, PERCEPTUAL, AnomalySDConfig, FinetuneConfig
from nipad.models.registry import Family, register

if TYPE_CHECKING:
    from nipad.models.anomalysd.inference import AnomalySD
    from nipad.models.anomalysd.pipeline import SDParts

CONFIG, WEIGHTS = "config.json", "model.safetensors"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `nipad train` flags of this family (it also reads --shots, --epochs, --batch-size, --lr, --image-size,
    --backbone, --seed, --device, --false-alarm-rate and --overwrite)."""
    g = parser.add_argument_group("anomalysd (--model anomalysd --shots K)")
    g.add_argument("--sd-model", metavar="PATH",
                   help="local diffusers-format Stable Diffusion inpainting folder (nothing is downloaded)")
    g.add_argument("--sd-steps", type=int, metavar="T", help="denoising schedule length T (default 50)")
    g.add_argument("--sd-lambda", action="append", metavar="[CLASS=]VALUE",
                   help="noise strength: denoising starts at step lambda*T (default 0.4); CLASS=VALUE for one class; "
                        "repeatable")
    g.add_argument("--sd-scales", metavar="K,K,...", help="k x k mask grids (default 1,2,4,8)")
    g.add_argument("--sd-mask-batch", type=int, metavar="N", help="inpaintings per UNet batch (default 8)")
    g.add_argument("--sd-prompts", metavar="YAML", help="extra class prompts (format of anomalysd/prompts.yaml)")
    g.add_argument("--sd-decoder-epochs", type=int, metavar="N", help="also fine-tune the VAE decoder (paper: 200; default 0)")
    g.add_argument("--perceptual", choices=PERCEPTUAL,
                   help="distance of the anomaly maps and the decoder loss: lpips (AlexNet LPIPS, the paper's; the "
                        "default where scripts/setup.sh converted its weights) or lite0 (EfficientNet-Lite0 stand-in)")
    g.add_argument("--sd-save-minutes", type=float, default=10.0, metavar="M",
                   help="save the fine-tuning state for resuming at most every M minutes (default 10; 0: every epoch)")


def _lambdas(values: Sequence[str] | None) -> tuple[float | None, dict[str, float]]:
    default, per_class = None, {}
    for text in values or []:
        name, _, value = text.rpartition("=")
        try:
            number = float(value)
        except ValueError as err:
            raise ConfigError(f"--sd-lambda {text!r}: give VALUE or CLASS=VALUE, e.g. 0.4 or screw=0.3") from err
        if name:
            per_class[name] = number
        else:
            default = number
    return default, per_class


def _scales(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(k) for k in text.split(",") if k.strip())
    except ValueError as err:
        raise ConfigError(f"--sd-scales {text!r}: give grid sizes separated by commas, e.g. 1,2,4,8") from err


def configs_from_args(args: argparse.Namespace, perceptual: str = "lpips") -> tuple[AnomalySDConfig, FinetuneConfig]:
    """Inference and fine-tuning settings: the paper's unless a flag says otherwise (`perceptual`: the chosen one)."""
    if args.shots is None:
        raise ConfigError("anomalysd learns from a few normal images per class: pass --shots K (paper: 0, 1, 2, 4)")
    strength, class_strength = _lambdas(args.sd_lambda)
    given = {"image_size": args.image_size, "steps": args.sd_steps, "strength": strength,
             "scales": _scales(args.sd_scales), "mask_batch": args.sd_mask_batch, "backbone": args.backbone,
             "backbone_weights": args.backbone_weights, "seed": args.seed, "perceptual": perceptual,
             "prompts_file": str(Path(args.sd_prompts).resolve()) if args.sd_prompts else None}
    config = AnomalySDConfig(sd_model=str(Path(args.sd_model).resolve()) if args.sd_model else "", shots=args.shots,
                             class_strength=class_strength, **{k: v for k, v in given.items() if v is not None})
    tuning = {"epochs": args.epochs, "decoder_epochs": args.sd_decoder_epochs, "batch_size": args.batch_size,
              "lr": args.lr, "seed": args.seed}
    return config, FinetuneConfig(**{k: v for k, v in tuning.items() if v is not None})


@dataclass
class AnomalySDRun:
    """config.json of an anomalysd run (the `info` that `load_run` returns with the model)."""

    model: AnomalySDConfig
    train: dict[str, Any]
    classes: list[str]
    data: list[str]
    prompts: dict[str, list[str]]
    finished: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_classes(self) -> list[str]:
        return self.classes if self.model.shots else []

    def to_dict(self) -> dict[str, Any]:
        return {"family": MODEL, "nipad_version": __version__, "model": self.model.to_dict(), "train": self.train,
                "classes": self.classes, "data": self.data, "prompts": self.prompts, "finished": self.finished,
                **self.extra}

    @classmethod
    def read(cls, run_dir: Path) -> AnomalySDRun:
        path = run_dir / CONFIG
        if not path.is_file():
            raise CheckpointError(f"{path} is missing: {run_dir} is not a nipad run directory")
        integrity.verify(run_dir, CONFIG)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            known = {"family", "nipad_version", "model", "train", "classes", "data", "prompts", "finished"}
            return cls(AnomalySDConfig.from_dict(data["model"]), dict(data["train"]), list(data["classes"]),
                       list(data["data"]), {k: list(v) for k, v in data["prompts"].items()}, bool(data["finished"]),
                       {k: v for k, v in data.items() if k not in known})
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError, NipadError) as err:
            raise CheckpointError(f"{path} is corrupt or from another program ({err}); retrain into a new folder") from err


def _check_out(out: Path, overwrite: bool) -> None:
    path = out / CONFIG
    if path.is_file() and not overwrite:
        try:
            finished = bool(json.loads(path.read_text(encoding="utf-8")).get("finished"))
        except (json.JSONDecodeError, AttributeError):
            finished = True
        if finished:
            raise ConfigError(f"{out} already holds a finished run; choose another --out or pass --overwrite")


def _shot_tensors(samples: Sequence[Sample], classes: list[str], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = np.stack([load_image(s.image_path, size) for s in samples]) if samples else np.zeros((0, size, size, 3))
    owners = torch.tensor([classes.index(s.class_name) for s in samples], dtype=torch.long)
    return torch.from_numpy(images.astype(np.uint8)).permute(0, 3, 1, 2).contiguous(), owners


def build_model(config: AnomalySDConfig, parts: SDParts, prompts: dict[str, list[str]], shots: torch.Tensor,
                owners: torch.Tensor, classes: list[str], device: torch.device | str,
                perceptual: torch.nn.Module | None = None) -> AnomalySD:
    """The AnomalySD detector from loaded SD parts: class conditions encoded, then the text encoder dropped; the
    perceptual distance is config.perceptual's unless given."""
    from nipad.models.anomalysd.inference import AnomalySD
    from nipad.models.anomalysd.perceptual import create_perceptual
    from nipad.models.anomalysd.prompts import encode_prompts
    from nipad.models.backbone import create_backbone

    perceptual = (perceptual or create_perceptual(config.perceptual)).to(device)
    conditions = {c: encode_prompts(parts.text_encoder, parts.tokenizer, prompts[c]).mean(dim=0) for c in classes}
    parts.text_encoder = None
    backbone = create_backbone(config.backbone, config.backbone_weights).to(device)
    by_class = {c: shots[owners == i].to(device) for i, c in enumerate(classes) if bool((owners == i).any())}
    return AnomalySD(config, parts, backbone, perceptual, conditions, by_class).eval()


def tuned_weights(parts: SDParts, unet: bool, decoder: bool) -> dict[str, torch.Tensor]:
    """What fine-tuning changes, named as in model.safetensors: unet.* and vae.{decoder,post_quant_conv}.*."""
    from nipad.models.anomalysd.finetune import decoder_parameters

    tensors = {f"unet.{k}": v for k, v in parts.unet.state_dict().items()} if unet else {}
    if decoder:
        tensors.update({f"vae.{k}": v for k, v in decoder_parameters(parts).items()})
    return tensors


def _load_tuned(parts: SDParts, tensors: dict[str, torch.Tensor], source: Path, sd_model: str) -> None:
    """Put saved unet.* / vae.* tensors into the SD parts (the UNet whole, the VAE in part)."""
    for prefix, module, strict in (("unet.", parts.unet, True), ("vae.", parts.vae, False)):
        state = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
        if not state:
            continue
        try:
            module.load_state_dict(state, strict=strict)
        except RuntimeError as err:
            raise CheckpointError(f"{source} does not fit the SD model in {sd_model} ({str(err)[:200]}); the run was "
                                  "made from another SD model") from err


def _check_resumable(out: Path, info: AnomalySDRun) -> None:
    """An unfinished run in `out` must have been started with the same settings, classes and data."""
    saved = AnomalySDRun.read(out)
    if (saved.model, FinetuneConfig.from_dict(saved.train), saved.classes, saved.data) != (
            info.model, FinetuneConfig.from_dict(info.train), info.classes, info.data):
        raise ConfigError(f"{out} holds an unfinished run of other settings or data; rerun its own command, choose "
                          "another --out or pass --overwrite")


def train(args: argparse.Namespace, dataset, samples: Sequence[Sample], ctx) -> None:
    """Fine-tune on the shots (k >= 1), resuming an unfinished run in --out, save the changed weights, calibrate on
    the shots, write config.json."""
    from nipad.models.anomalysd.finetune import finetune_decoder, finetune_unet
    from nipad.models.anomalysd.perceptual import choose, create_perceptual
    from nipad.models.anomalysd.pipeline import load_sd
    from nipad.models.anomalysd.prompts import class_prompts, encode_prompts, load_prompt_table
    from nipad.models.anomalysd.resume import STATE, Saver, load_progress, shots_digest

    if ctx.distributed:
        raise ConfigError("anomalysd fine-tunes in one process: run `nipad train` without torchrun")
    if args.sd_save_minutes < 0:
        raise ConfigError(f"--sd-save-minutes must be 0 or more, got {args.sd_save_minutes}")
    perceptual, note = choose(args.perceptual)
    config, tuning = configs_from_args(args, perceptual)
    out, device = Path(args.out), ctx.device
    _check_out(out, args.overwrite)
    if note:
        print(f"nipad: note: {note}")
    measure = create_perceptual(config.perceptual).to(device)  # a missing LPIPS file fails now, not after tuning
    parts = load_sd(config.sd_model, device)
    parts.check_size(config.image_size)
    classes = sorted({s.class_name for s in samples}) if config.shots else list(dataset.classes)
    unknown = sorted(set(config.class_strength) - set(classes))
    if unknown:
        raise ConfigError(f"--sd-lambda names class(es) {', '.join(unknown)} that the data lacks; classes: "
                          f"{', '.join(classes)}")
    table = load_prompt_table(config.prompts_file)
    prompts = {c: class_prompts(c, table) for c in classes}
    shots, owners = _shot_tensors(samples, classes, config.image_size)
    info = AnomalySDRun(config, tuning.to_dict(), classes, [str(d) for d in args.data], prompts,
                        extra={"n_train": len(shots)})
    digest = shots_digest(shots, owners)
    progress = None
    if (out / CONFIG).is_file() and not args.overwrite:
        _check_resumable(out, info)
        progress = load_progress(out, digest)
    if progress is None:
        integrity.forget(out, STATE)  # another run's, left by --overwrite
        integrity.write_json(out, CONFIG, info.to_dict())  # unfinished: a rerun resumes it
    print(f"nipad: anomalysd, {config.shots}-shot: {len(shots)} normal images of {len(classes)} classes, "
          f"SD model {config.sd_model}, perceptual distance {config.perceptual}, device {device}")
    history: list[dict] = progress.history if progress else []
    if progress:
        _load_tuned(parts, progress.weights, out / STATE, config.sd_model)
        print(f"nipad: resuming {out}: {progress.stage} fine-tuning after epoch {progress.epoch}")
    unet_tuned, decoder_tuned = bool(config.shots and tuning.epochs), bool(config.shots and tuning.decoder_epochs)
    saver = Saver(out, digest, lambda stage: tuned_weights(parts, unet_tuned, stage == "decoder"), history,
                  60 * args.sd_save_minutes)
    started = time.time()
    if unet_tuned:
        start = progress.start("unet", tuning.epochs) if progress else None
        if start is None or start.epoch < tuning.epochs:
            states = [encode_prompts(parts.text_encoder, parts.tokenizer, prompts[c]) for c in classes]
            finetune_unet(parts, shots, owners, states, tuning, start=start, history=history, checkpoint=saver)
    if decoder_tuned:
        start = progress.start("decoder", tuning.decoder_epochs) if progress else None
        if start is None or start.epoch < tuning.decoder_epochs:
            finetune_decoder(parts, measure, shots, tuning, start=start, history=history, checkpoint=saver)
    if config.shots:
        tensors = {**tuned_weights(parts, unet_tuned, decoder_tuned), "shots.images": shots, "shots.owners": owners}
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        integrity.write_file(out, WEIGHTS, lambda tmp: save_file(tensors, str(tmp)))
    else:
        integrity.forget(out, WEIGHTS)
    info.extra.update({"history": history, "train_seconds": round(time.time() - started, 1)})
    model = build_model(config, parts, prompts, shots, owners, classes, device, measure)
    if config.shots:
        rate = 0.01 if args.false_alarm_rate is None else args.false_alarm_rate
        source = (f"the {len(samples)} training shots themselves (a few-shot run holds out no normal image, so the "
                  "thresholds are likely too low: redo them with `nipad calibrate` on more normal images)")
        with torch.inference_mode():
            calibrate(model, list(samples), rate, source).save(out)
        print(f"nipad: thresholds set on the {len(samples)} shots themselves (no held-out normal images)")
    else:
        print(f"nipad: 0-shot run: no normal images, so no thresholds yet: set them with `nipad calibrate {out} "
              "--data ROOT` on normal images")
    info.finished = True
    integrity.write_json(out, CONFIG, info.to_dict())
    saver.remove()


def load(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[AnomalySD, AnomalySDRun]:
    """(AnomalySD in eval mode, AnomalySDRun) of a finished run; the SD model is read from its recorded folder."""
    from nipad.models.anomalysd.pipeline import load_sd

    run_dir = Path(run_dir)
    info = AnomalySDRun.read(run_dir)
    config = info.model
    if not Path(config.sd_model).is_dir():
        raise CheckpointError(f"the run in {run_dir} was made from the SD model in {config.sd_model}, which is not "
                              f"there any more: put it back or set model.sd_model in {run_dir / CONFIG}")
    parts = load_sd(config.sd_model, device)
    shots = torch.zeros(0, 3, config.image_size, config.image_size, dtype=torch.uint8)
    owners = torch.zeros(0, dtype=torch.long)
    if config.shots:
        path = run_dir / WEIGHTS
        integrity.verify(run_dir, WEIGHTS)
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"{path} is missing or corrupt ({err}); retrain the run") from err
        integrity.check_finite(tensors, path)
        shots, owners = tensors.pop("shots.images"), tensors.pop("shots.owners")
        _load_tuned(parts, tensors, path, config.sd_model)
    model = build_model(config, parts, info.prompts, shots, owners, info.classes, device)
    return model.to(device), info


register(Family(MODEL, (MODEL,), train, load))
