"""sr_keras.train.runner: the one run loop both training scripts hand their trainer builder to."""
import json
import os

import pytest

from sr_keras.archs.config import GeneratorConfig
from sr_keras.cli import train_srgan, train_srresnet
from sr_keras.train import loop, runner
from sr_keras.train.settings import TrainConfig

TINY = GeneratorConfig(4, num_blocks=1, filters=8)


class RecordingTrainer(runner.TrainerBuilder):
    """An SRResNet trainer that records which of its methods the run loop calls, in order."""
    model = "recorded"

    def __init__(self):
        self.calls = []

    def settings(self, train):
        self.calls.append("settings")
        return {"loss": "mse"}

    def before_data(self, train, strategy):
        self.calls.append("before_data")

    def build(self, train, generator_config, state):
        self.calls.append(("build", state.epoch if state else None))
        return loop.build_srresnet_trainer(generator_config, lr=train.lr)

    def resumed(self, trainer):
        self.calls.append("resumed")
        return f"(step {int(trainer.optimizer.iterations)})"

    def summary(self, train, generator_config, trainer, generator):
        self.calls.append("summary")
        return f"recorded x{generator_config.scale}"


def test_both_scripts_hand_their_trainer_to_the_one_run_loop():
    assert issubclass(train_srresnet.SRResNetTrainer, runner.TrainerBuilder)
    assert issubclass(train_srgan.GANTrainer, runner.TrainerBuilder)
    assert {train_srresnet.SRResNetTrainer.model, train_srgan.GANTrainer.model} == {"srresnet", "srgan"}


@pytest.mark.slow  # a whole training run
def test_run_builds_through_the_builder_before_fitting_and_resumes_through_it(tmp_path, monkeypatch, capsys):
    builder = RecordingTrainer()
    datasets = loop.datasets

    def recorded_datasets(train, start_epoch):
        builder.calls.append(("datasets", start_epoch))
        return datasets(train, start_epoch)

    monkeypatch.setattr(loop, "datasets", recorded_datasets)
    out = str(tmp_path / "run")
    settings = dict(track="bicubic_x4", data="samples", out=out, export=str(tmp_path / "export"), batch_size=2,
                    hr_crop=20, steps_per_epoch=1, val_images=1, panel_images=0)
    runner.run(TrainConfig(epochs=1, **settings), TINY, builder)
    assert builder.calls == ["settings", "before_data", ("datasets", 0), ("build", None), "summary"]
    assert "recorded x4" in capsys.readouterr().out
    with open(os.path.join(out, "checkpoints", "checkpoint.json")) as f:
        config = json.load(f)["config"]
    assert (config["model"], config["loss"], config["num_blocks"]) == ("recorded", "mse", 1)
    assert os.path.isfile(tmp_path / "export" / "model.keras")  # the chief exported the selected generator

    builder.calls.clear()
    runner.run(TrainConfig(epochs=2, resume=True, **settings), TINY, builder)
    assert builder.calls == ["settings", "before_data", ("datasets", 1), ("build", 1), "resumed", "summary"]
    assert f"resuming {out} after epoch 1 (step 1)" in capsys.readouterr().out
