"""The "anomalysd" model family: few-shot fine-tuning of a Stable Diffusion inpainting model, and loading its runs.

Run directory: config.json (nipad.runs.run_info: the AnomalySD settings with the SD model's path, the fine-tuning
settings, and the prompts of every class in "prompts"), model.safetensors (only what fine-tuning changed: the UNet,
the VAE decoder when it was tuned, and the k shots per class that rebuild the prototype banks and the class pool;
absent for k = 0, where the pretrained model runs as it is) and calibration.json (thresholds from the shots
themselves: a few-shot run holds out no normal image, so `nipad calibrate` on more normal images gives better ones).
While fine-tuning, train_state.pt lets the same command resume an interrupted run (nipad.runs.finetune_state).
Each file's hash is in manifest.json (nipad.runs.integrity), checked when it is read. diffusers and transformers
are imported only when a run is trained or loaded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from nipad.data import load_image
from nipad.data.sample import Sample
from nipad.data.train_data import TrainData
from nipad.engine.distributed import Context
from nipad.engine.train_config import check_rate
from nipad.errors import CheckpointError, ConfigError
from nipad.models.anomalysd.config import MODEL, AnomalySDConfig, FinetuneConfig
from nipad.runs import integrity, lifecycle
from nipad.runs.run_info import CONFIG, WEIGHTS, RunInfo, load_weights, read_info, write_info

if TYPE_CHECKING:
    from nipad.models.anomalysd.inference import AnomalySD


@dataclass(frozen=True)
class AnomalySDTraining:
    """Inference and fine-tuning settings, the false alarm rate of the thresholds set on the shots, and how often
    (minutes) the fine-tuning state is saved for resuming (0: every epoch)."""

    model: AnomalySDConfig
    tuning: FinetuneConfig
    false_alarm_rate: float = 0.01
    save_minutes: float = 10.0

    def __post_init__(self) -> None:
        if self.save_minutes < 0:
            raise ConfigError(f"--sd-save-minutes must be 0 or more, got {self.save_minutes}")
        check_rate(self.false_alarm_rate)


def read_run(run_dir: str | Path) -> RunInfo[AnomalySDConfig]:
    """config.json of an anomalysd run (runs from before "prompt_classes" was recorded get it from their shots)."""
    info = read_info(run_dir, AnomalySDConfig.from_dict)
    if "prompts" not in info.extra:
        raise CheckpointError(f"{Path(run_dir) / CONFIG} has no class prompts: it is corrupt or from another program; "
                              "retrain into a new folder")
    if not info.prompt_classes and info.model.shots:
        info.prompt_classes = list(info.classes)
    return info


def _shot_tensors(samples: Sequence[Sample], classes: list[str], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = np.stack([load_image(s.image_path, size) for s in samples]) if samples else np.zeros((0, size, size, 3))
    owners = torch.tensor([classes.index(s.class_name) for s in samples], dtype=torch.long)
    return torch.from_numpy(images.astype(np.uint8)).permute(0, 3, 1, 2).contiguous(), owners


def _check_resumable(out: Path, info: RunInfo[AnomalySDConfig]) -> None:
    """An unfinished run in `out` must have been started with the same settings, classes and data."""
    saved = read_run(out)
    if (saved.model, FinetuneConfig.from_dict(saved.train), saved.classes, saved.data) != (
            info.model, FinetuneConfig.from_dict(info.train), info.classes, info.data):
        raise ConfigError(f"{out} holds an unfinished run of other settings or data; rerun its own command, choose "
                          "another --out or pass --overwrite")


def train(config: AnomalySDTraining, data: TrainData, run_dir: Path, *, ctx: Context, overwrite: bool = False) -> None:
    """Fine-tune on the shots (k >= 1), resuming an unfinished run in run_dir; nipad.runs.lifecycle finishes it
    (thresholds on the shots themselves, the changed weights saved, config.json marked finished)."""
    from safetensors.torch import save_file

    from nipad.models.anomalysd.build import build_model, load_tuned, tuned_weights
    from nipad.models.anomalysd.finetune import finetune_decoder, finetune_unet
    from nipad.models.anomalysd.perceptual import create_perceptual
    from nipad.models.anomalysd.pipeline import load_sd
    from nipad.models.anomalysd.text_prompts import class_prompts, encode_prompts, load_prompt_table
    from nipad.runs.finetune_state import STATE, Saver, load_progress, shots_digest

    if ctx.distributed:
        raise ConfigError("anomalysd fine-tunes in one process: run `nipad train` without torchrun")
    model_config, tuning, out, device = config.model, config.tuning, run_dir, ctx.device
    lifecycle.refuse_finished(out, overwrite)
    measure = create_perceptual(model_config.perceptual).to(device)  # a missing LPIPS file fails now, not after tuning
    parts = load_sd(model_config.sd_model, device)
    parts.check_size(model_config.image_size)
    samples = data.samples
    classes = sorted({s.class_name for s in samples}) if model_config.shots else list(data.classes)
    unknown = sorted(set(model_config.class_strength) - set(classes))
    if unknown:
        raise ConfigError(f"--sd-lambda names class(es) {', '.join(unknown)} that the data lacks; classes: "
                          f"{', '.join(classes)}")
    table = load_prompt_table(model_config.prompts_file)
    prompts = {c: class_prompts(c, table) for c in classes}
    shots, owners = _shot_tensors(samples, classes, model_config.image_size)
    info = RunInfo(model_config, tuning.to_dict(), classes, list(data.roots),
                   prompt_classes=classes if model_config.shots else [], family=MODEL,
                   extra={"prompts": prompts, "n_train": len(shots)})
    digest = shots_digest(shots, owners)
    progress = None
    if (out / CONFIG).is_file() and not overwrite:
        _check_resumable(out, info)
        progress = load_progress(out, digest)
    if progress is None:
        integrity.forget(out, STATE)  # another run's, left by --overwrite
        write_info(out, info)  # unfinished: a rerun resumes it
    print(f"nipad: anomalysd, {model_config.shots}-shot: {len(shots)} normal images of {len(classes)} classes, "
          f"SD model {model_config.sd_model}, perceptual distance {model_config.perceptual}, device {device}")
    history: list[dict] = progress.history if progress else []
    if progress:
        load_tuned(parts, progress.weights, out / STATE, model_config.sd_model)
        print(f"nipad: resuming {out}: {progress.stage} fine-tuning after epoch {progress.epoch}")
    unet_tuned = bool(model_config.shots and tuning.epochs)
    decoder_tuned = bool(model_config.shots and tuning.decoder_epochs)
    saver = Saver(out, digest, lambda stage: tuned_weights(parts, unet_tuned, stage == "decoder"), history,
                  60 * config.save_minutes)
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
    tensors = {**tuned_weights(parts, unet_tuned, decoder_tuned), "shots.images": shots, "shots.owners": owners}
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    info.extra.update({"history": history, "train_seconds": round(time.time() - started, 1)})
    model = build_model(model_config, parts, prompts, shots, owners, classes, device, measure)

    def save(info: RunInfo) -> None:
        if model_config.shots:
            integrity.write_file(out, WEIGHTS, lambda tmp: save_file(tensors, str(tmp)))
        else:
            integrity.forget(out, WEIGHTS)
        write_info(out, info)

    source = (f"the {len(samples)} training shots themselves (a few-shot run holds out no normal image, so the "
              "thresholds are likely too low: redo them with `nipad calibrate` on more normal images)")
    with torch.inference_mode():
        lifecycle.finish(out, model, info, save, samples if model_config.shots else [], [], config.false_alarm_rate,
                         source)
    if model_config.shots:
        print(f"nipad: thresholds set on the {len(samples)} shots themselves (no held-out normal images)")
    else:
        print(f"nipad: 0-shot run: no normal images, so no thresholds yet: set them with `nipad calibrate {out} "
              "--data ROOT` on normal images")
    saver.remove()


def load(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[AnomalySD, RunInfo[AnomalySDConfig]]:
    """(AnomalySD in eval mode, its RunInfo) of a finished run; the SD model is read from its recorded folder."""
    from nipad.models.anomalysd.build import build_model, load_tuned
    from nipad.models.anomalysd.pipeline import load_sd

    run_dir = Path(run_dir)
    info = read_run(run_dir)
    config = info.model
    if not Path(config.sd_model).is_dir():
        raise CheckpointError(f"the run in {run_dir} was made from the SD model in {config.sd_model}, which is not "
                              f"there any more: put it back or set model.sd_model in {run_dir / CONFIG}")
    parts = load_sd(config.sd_model, device)
    shots = torch.zeros(0, 3, config.image_size, config.image_size, dtype=torch.uint8)
    owners = torch.zeros(0, dtype=torch.long)
    if config.shots:
        tensors = load_weights(run_dir)
        shots, owners = tensors.pop("shots.images"), tensors.pop("shots.owners")
        load_tuned(parts, tensors, run_dir / WEIGHTS, config.sd_model)
    model = build_model(config, parts, info.extra["prompts"], shots, owners, info.classes, device)
    return model.to(device), info
