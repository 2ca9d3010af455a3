"""Pretrained HuBERT-Soft and HiFi-GAN: loading the official file layouts, strict checks, adapters, export.

The references here are reduced-width instances of the published architectures assembled from torch's own
building blocks as the published code assembles them (``nn.TransformerEncoderLayer``, ``weight_norm`` in
its old hook form or as a parametrization), saved the way the published files are saved: HuBERT-Soft as a
bare, ``module.``-prefixed state dict; HiFi-GAN as ``{"generator": state_dict}`` beside a ``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from engine.checkpoint import load_checkpoint, save_checkpoint
from engine.config import AudioConfig, Config, ConfigError, ModelConfig, PretrainedConfig
from engine.errors import ArtifactError, CheckpointError
from engine.pretrained import HubertSoftSizes, load_hifigan, load_hubert_soft, read_hifigan_config
from engine.pretrained.adapters import HiFiGANVocoder, HubertSoftContent
from engine.pretrained.attach import attach_pretrained

SMALL = HubertSoftSizes(conv_channels=48, hidden=128, heads=2, ffn=256, layers=2, units=256, pos_kernel=128,
                        pos_groups=16, labels=100)


def _weight_norm(module: nn.Module, old: bool, dim: int = 0) -> nn.Module:
    if old:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # the old hook is deprecated, but it made the files
            return nn.utils.weight_norm(module, name="weight", dim=dim)
    return nn.utils.parametrizations.weight_norm(module, name="weight", dim=dim)


def _randomise(module: nn.Module, seed: int) -> None:
    """Non-trivial values everywhere (norm gains and biases included), so a misplaced tensor shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.3 if p.dim() > 1 else 0.1)
                    + (1.0 if p.dim() == 1 and p.shape[0] > 1 else 0.0))


# --- HuBERT-Soft reference ---------------------------------------------------------------------------

class RefHubertSoft(nn.Module):
    def __init__(self, z: HubertSoftSizes, old_weight_norm: bool) -> None:
        super().__init__()
        c, d = z.conv_channels, z.hidden
        fe = nn.Module()
        for i, (k, s) in enumerate(((10, 5), (3, 2), (3, 2), (3, 2), (3, 2), (2, 2), (2, 2))):
            fe.add_module(f"conv{i}", nn.Conv1d(1 if i == 0 else c, c, k, s, bias=False))
        fe.add_module("norm0", nn.GroupNorm(c, c))
        self.feature_extractor = fe
        fp = nn.Module()
        fp.add_module("norm", nn.LayerNorm(c))
        fp.add_module("projection", nn.Linear(c, d))
        self.feature_projection = fp
        pe = nn.Module()
        pe.add_module("conv", _weight_norm(nn.Conv1d(d, d, z.pos_kernel, padding=z.pos_kernel // 2,
                                                     groups=z.pos_groups), old_weight_norm, dim=2))
        self.positional_embedding = pe
        self.norm = nn.LayerNorm(d)
        enc = nn.Module()
        enc.add_module("layers", nn.ModuleList(
            nn.TransformerEncoderLayer(d, z.heads, z.ffn, activation="gelu", batch_first=True)
            for _ in range(z.layers)))
        self.encoder = enc
        self.proj = nn.Linear(d, z.units)
        self.masked_spec_embed = nn.Parameter(torch.zeros(d).uniform_())
        self.label_embedding = nn.Embedding(z.labels, z.units)

    def units(self, wav: torch.Tensor) -> torch.Tensor:
        fe = self.feature_extractor
        x = F.pad(wav, (40, 40)).unsqueeze(1)
        x = F.gelu(fe.norm0(fe.conv0(x)))
        for i in range(1, 7):
            x = F.gelu(getattr(fe, f"conv{i}")(x))
        x = self.feature_projection.projection(self.feature_projection.norm(x.transpose(1, 2)))
        pos = self.positional_embedding.conv(x.transpose(1, 2))
        x = self.norm(x + F.gelu(pos[:, :, :-1]).transpose(1, 2))
        for layer in self.encoder.layers:
            x = layer(x)
        return self.proj(x)


def save_hubert(path: Path, *, old_weight_norm: bool = True, ddp: bool = True, seed: int = 0,
                edit: Callable[[dict[str, torch.Tensor]], None] | None = None) -> RefHubertSoft:
    ref = RefHubertSoft(SMALL, old_weight_norm)
    _randomise(ref, seed)
    ref.eval()
    state = {("module." if ddp else "") + k: v for k, v in ref.state_dict().items()}
    if edit:
        edit(state)
    torch.save(state, path)
    return ref


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def hubert_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RefHubertSoft]:
    path = tmp_path_factory.mktemp("hubert") / "hubert-soft-small.pt"
    return path, save_hubert(path)


def _audio(samples: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 16000
    return (0.3 * torch.sin(2 * torch.pi * 220 * t) + 0.05 * torch.randn(batch, samples, generator=gen)).float()


def _shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def test_full_size_published_layout_is_ours(tmp_path: Path) -> None:
    """The published sizes (on the meta device: shapes only), and the sizes read back from such a file."""
    from engine.pretrained.hifigan import HiFiGANGenerator
    from engine.pretrained.hubert_soft import HubertSoft, _infer_sizes
    from engine.pretrained.official_state import normalise_keys

    published_v1 = {**V1_SMALL, "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
                    "upsample_initial_channel": 512, "hop_size": 256, "sampling_rate": 22050}
    (tmp_path / "config.json").write_text(json.dumps(published_v1))
    with torch.device("meta"):
        ref = RefHubertSoft(HubertSoftSizes(), old_weight_norm=True).state_dict()
        ours = HubertSoft().state_dict()
        ref_gen = RefGenerator(published_v1, old_weight_norm=True).state_dict()
        our_gen = HiFiGANGenerator(read_hifigan_config(tmp_path / "config.json")).state_dict()
    assert ref["positional_embedding.conv.weight_g"].shape == (1, 1, 128)
    assert _shapes(normalise_keys(ref)) == _shapes(ours)
    assert _infer_sizes(normalise_keys(ref)) == HubertSoftSizes()
    assert sum(v.numel() for k, v in ours.items()) > 94_000_000  # HuBERT Base
    assert "resblocks.11.convs2.2.weight_v" in ref_gen
    assert _shapes(normalise_keys(ref_gen)) == _shapes(our_gen)


@pytest.mark.parametrize("old_weight_norm, ddp", [(True, True), (False, False), (False, True)],
                         ids=["weight_g-v+module", "parametrization", "parametrization+module"])
def test_hubert_soft_loads_and_matches_the_reference(tmp_path: Path, old_weight_norm: bool, ddp: bool) -> None:
    path = tmp_path / "hubert.pt"
    ref = save_hubert(path, old_weight_norm=old_weight_norm, ddp=ddp, seed=3)
    model = load_hubert_soft(path)
    assert model.sizes == SMALL and not model.training
    assert not any(hasattr(m, "parametrizations") for m in model.modules())  # weight norm folded
    audio = _audio(5 * 320 + 77, batch=2)
    with torch.inference_mode():
        expected, got = ref.units(audio), model.units(audio)
        other = ref.units(_audio(5 * 320 + 77, 2, seed=1))
    assert got.shape == (2, 5, 256)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert float((expected - other).abs().max()) > 1e-3  # the units depend on the audio


def test_hubert_soft_missing_and_unexpected_keys_are_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"

    def drop(state: dict[str, torch.Tensor]) -> None:
        del state["module.encoder.layers.1.norm2.bias"]
        state["module.extra.weight"] = torch.zeros(1)

    save_hubert(path, edit=drop)
    with pytest.raises(CheckpointError) as err:
        load_hubert_soft(path)
    msg = str(err.value)
    assert str(path) in msg and "HuBERT-Soft" in msg
    assert "missing keys: encoder.layers.1.norm2.bias" in msg and "unexpected keys: extra.weight" in msg


def test_hubert_soft_shape_mismatch_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    save_hubert(path, edit=lambda s: s.__setitem__("module.proj.bias", torch.zeros(255)))
    with pytest.raises(CheckpointError,
                       match=r"shape mismatches: proj\.bias \(255,\) in the file, \(256,\) in the model"):
        load_hubert_soft(path)


class NotWeights:
    pass


def test_pickled_objects_and_non_state_dicts_are_refused(tmp_path: Path) -> None:
    pickled = tmp_path / "pickled.pt"
    torch.save({"module.proj.weight": NotWeights()}, pickled)
    with pytest.raises(CheckpointError, match="cannot read HuBERT-Soft checkpoint"):
        load_hubert_soft(pickled)
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(CheckpointError, match="expected a state dict"):
        load_hubert_soft(listed)
    with pytest.raises(CheckpointError, match="no HuBERT-Soft checkpoint"):
        load_hubert_soft(tmp_path / "absent.pt")


@pytest.mark.parametrize("samples", [320, 479, 480, 959, 960, 4000, 4161])
def test_content_adapter_gives_one_frame_per_hop(hubert_file: tuple[Path, RefHubertSoft], samples: int) -> None:
    path, ref = hubert_file
    adapter = HubertSoftContent(load_hubert_soft(path), AudioConfig())
    audio = _audio(samples, batch=2)
    with torch.inference_mode():
        content = adapter(audio)
        units = ref.units(audio).transpose(1, 2)  # [b, 256, s // 320]
    n, m = samples // 160, samples // 320
    assert content.shape == (2, 256, n) and units.shape[2] == m
    for k in range(m):  # frame 2k sits a quarter unit before unit k, frame 2k+1 a quarter after
        before, after = units[:, :, max(k - 1, 0)], units[:, :, min(k + 1, m - 1)]
        torch.testing.assert_close(content[:, :, 2 * k], 0.75 * units[:, :, k] + 0.25 * before, atol=1e-5, rtol=1e-4)
        if 2 * k + 1 < n:
            torch.testing.assert_close(content[:, :, 2 * k + 1], 0.75 * units[:, :, k] + 0.25 * after,
                                       atol=1e-5, rtol=1e-4)
    if n % 2:
        torch.testing.assert_close(content[:, :, -1], units[:, :, -1], atol=1e-5, rtol=1e-4)


def test_content_adapter_refuses_another_frame_rate(hubert_file: tuple[Path, RefHubertSoft]) -> None:
    with pytest.raises(CheckpointError, match="one unit per 320 samples at 16000 Hz.*hop of 256"):
        HubertSoftContent(load_hubert_soft(hubert_file[0]), AudioConfig(sample_rate=22050, hop_length=256))


# --- HiFi-GAN reference ------------------------------------------------------------------------------

V1_SMALL = {"resblock": "1", "upsample_rates": [5, 4, 4, 2], "upsample_kernel_sizes": [11, 8, 8, 4],
            "upsample_initial_channel": 32, "resblock_kernel_sizes": [3, 7, 11],
            "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "segment_size": 6400, "num_mels": 80,
            "num_freq": 513, "n_fft": 1024, "hop_size": 160, "win_size": 1024, "sampling_rate": 16000, "fmin": 0,
            "fmax": 8000, "fmax_for_loss": None, "num_gpus": 0, "batch_size": 16, "learning_rate": 0.0002}
V3_SMALL = {**V1_SMALL, "resblock": "2", "upsample_rates": [8, 5, 4], "upsample_kernel_sizes": [16, 11, 8],
            "resblock_kernel_sizes": [3, 5, 7], "resblock_dilation_sizes": [[1, 2], [2, 6], [3, 12]]}


def _pad(k: int, d: int) -> int:
    return (k * d - d) // 2


class RefGenerator(nn.Module):
    def __init__(self, h: dict, old_weight_norm: bool) -> None:
        super().__init__()

        def wn(m: nn.Module) -> nn.Module:
            return _weight_norm(m, old_weight_norm)

        ch = h["upsample_initial_channel"]
        self.conv_pre = wn(nn.Conv1d(80, ch, 7, 1, padding=3))
        rates = zip(h["upsample_rates"], h["upsample_kernel_sizes"], strict=True)
        self.ups = nn.ModuleList(wn(nn.ConvTranspose1d(ch // 2 ** i, ch // 2 ** (i + 1), k, u, padding=(k - u) // 2))
                                 for i, (u, k) in enumerate(rates))
        self.resblocks = nn.ModuleList()
        for i in range(len(self.ups)):
            c = ch // 2 ** (i + 1)
            for k, ds in zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"], strict=True):
                block = nn.Module()
                if h["resblock"] == "1":
                    block.add_module("convs1", nn.ModuleList(wn(nn.Conv1d(c, c, k, 1, dilation=d, padding=_pad(k, d)))
                                                             for d in ds))
                    block.add_module("convs2", nn.ModuleList(wn(nn.Conv1d(c, c, k, 1, dilation=1, padding=_pad(k, 1)))
                                                             for _ in ds))
                else:
                    block.add_module("convs", nn.ModuleList(wn(nn.Conv1d(c, c, k, 1, dilation=d, padding=_pad(k, d)))
                                                            for d in ds))
                self.resblocks.append(block)
        self.conv_post = wn(nn.Conv1d(c, 1, 7, 1, padding=3))
        self.kind, self.num_kernels = h["resblock"], len(h["resblock_kernel_sizes"])

    def _block(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "1":
            for c1, c2 in zip(block.convs1, block.convs2, strict=True):
                xt = c2(F.leaky_relu(c1(F.leaky_relu(x, 0.1)), 0.1))
                x = xt + x
        else:
            for c in block.convs:
                x = c(F.leaky_relu(x, 0.1)) + x
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            xs = None
            for j in range(self.num_kernels):
                y = self._block(self.resblocks[i * self.num_kernels + j], x)
                xs = y if xs is None else xs + y
            x = xs / self.num_kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


def save_hifigan(folder: Path, h: dict, *, old_weight_norm: bool = True, ddp: bool = False, seed: int = 0,
                 edit: Callable[[dict[str, torch.Tensor]], None] | None = None) -> tuple[Path, RefGenerator]:
    folder.mkdir(parents=True, exist_ok=True)
    ref = RefGenerator(h, old_weight_norm)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # weight-norm magnitudes near 1 carry the signal through every layer, both signs
        for name, p in ref.named_parameters():
            magnitude = name.endswith(("weight_g", "original0"))
            p.copy_(0.8 + 0.1 * torch.randn(p.shape, generator=gen) if magnitude else
                    torch.randn(p.shape, generator=gen) * (1.0 if p.dim() > 1 else 0.05))
    ref.eval()
    state = {("module." if ddp else "") + k: v for k, v in ref.state_dict().items()}
    if edit:
        edit(state)
    (folder / "config.json").write_text(json.dumps(h))
    torch.save({"generator": state}, folder / "g_00000100")
    return folder / "g_00000100", ref


@pytest.mark.parametrize("h, old_weight_norm, ddp", [(V1_SMALL, True, False), (V3_SMALL, False, True),
                                                     (V1_SMALL, True, True)],
                         ids=["v1-weight_g-v", "v3-parametrization+module", "v1-weight_g-v+module"])
def test_hifigan_loads_and_matches_the_reference(tmp_path: Path, h: dict, old_weight_norm: bool, ddp: bool) -> None:
    path, ref = save_hifigan(tmp_path / "hifigan", h, old_weight_norm=old_weight_norm, ddp=ddp, seed=7)
    model = load_hifigan(path)
    assert not model.training and not any(hasattr(m, "parametrizations") for m in model.modules())
    mel = torch.randn(2, 80, 13, generator=torch.Generator().manual_seed(1)) - 4.0
    with torch.inference_mode():
        expected, got = ref(mel), model(mel)
    assert got.shape == (2, 1, 13 * 160)
    assert float(expected.min()) < -0.05 and 0.05 < float(expected.max()) < 0.99  # both signs, tanh not saturated
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_hifigan_mismatches_are_named(tmp_path: Path) -> None:
    path, _ = save_hifigan(tmp_path / "a", V1_SMALL, edit=lambda s: s.pop("resblocks.4.convs2.1.weight_v"))
    with pytest.raises(CheckpointError, match=r"HiFi-GAN generator.*missing keys: "
                                              r"resblocks\.4\.convs2\.1\.parametrizations\.weight\.original1"):
        load_hifigan(path)
    path, _ = save_hifigan(tmp_path / "b", V1_SMALL)  # a V1 file read with a V3 config
    (tmp_path / "b" / "v3.json").write_text(json.dumps(V3_SMALL))
    with pytest.raises(CheckpointError) as err:
        load_hifigan(path, tmp_path / "b" / "v3.json")
    assert str(path) in str(err.value) and "shape mismatches: ups.0" in str(err.value)
    (tmp_path / "b" / "config.json").write_text(json.dumps({**V1_SMALL, "upsample_rates": [5, 4, 4, 4]}))
    with pytest.raises(CheckpointError, match="multiply to 320, not hop_size 160"):
        load_hifigan(path)
    (tmp_path / "b" / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no HiFi-GAN config at .*config.json"):
        load_hifigan(path)


def test_vocoder_adapter_checks_rate_hop_and_mels(tmp_path: Path) -> None:
    official_v1 = {**V1_SMALL, "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
                   "hop_size": 256, "sampling_rate": 22050}
    path, _ = save_hifigan(tmp_path, official_v1)
    with pytest.raises(CheckpointError, match=r"sampling_rate 22050 \(ours: audio.sample_rate 16000\); "
                                              r"hop_size 256 \(ours: audio.hop_length 160\)"):
        HiFiGANVocoder(load_hifigan(path), AudioConfig())
    assert read_hifigan_config(tmp_path / "config.json").upsampling == 256


# --- ONNX export through the project's exporter -------------------------------------------------------

# Narrow layers for the parts of the model these tests do not look into (content stays 256 wide).
TINY = {"content_hidden": 16, "content_layers": 1, "pitch_hidden": 16, "flow_hidden": 16, "flow_layers": 1,
        "flow_couplings": 1, "mel_hidden": 16, "vocoder_hidden": 16, "vocoder_layers": 1, "posterior_hidden": 16,
        "posterior_layers": 1}


def _svc_model(**model: str | int):  # -> SVCModel
    from engine.models.svc import SVCModel

    torch.manual_seed(0)
    return SVCModel(ModelConfig(**model), AudioConfig()).eval()  # type: ignore[arg-type]


def test_content_adapter_exports_with_onnxruntime_parity(hubert_file: tuple[Path, RefHubertSoft],
                                                         tmp_path: Path) -> None:
    import onnxruntime as ort

    from engine.export.onnx_export import export_component, inference_copy

    model = _svc_model()
    model.content_encoder = HubertSoftContent(load_hubert_soft(hubert_file[0]), AudioConfig())  # type: ignore[assignment]
    copy = inference_copy(model)
    assert copy.content_encoder is model.content_encoder  # the copy for export keeps the adapter
    parity = export_component(copy, "content_encoder", tmp_path / "content_encoder.onnx")
    assert parity and max(parity.values()) <= 1e-4  # at two batch sizes and lengths unlike the trace
    session = ort.InferenceSession(str(tmp_path / "content_encoder.onnx"), providers=["CPUExecutionProvider"])
    for samples in (3 * 160 + 5, 4321):  # an odd frame count, and a remainder
        audio = _audio(samples, batch=1, seed=samples)
        (out,) = session.run(None, {"audio": audio.numpy()})
        with torch.inference_mode():
            ref = model.content_encoder(audio).numpy()
        assert out.shape == ref.shape == (1, 256, samples // 160)
        assert np.max(np.abs(out - ref)) <= 1e-4 * np.max(np.abs(ref))


def test_vocoder_adapter_exports_with_onnxruntime_parity(tmp_path: Path) -> None:
    import onnx

    from engine.export.onnx_export import export_component

    path, _ = save_hifigan(tmp_path / "hifigan", V3_SMALL)
    model = _svc_model()
    model.vocoder = HiFiGANVocoder(load_hifigan(path), AudioConfig())  # type: ignore[assignment]
    parity = export_component(model, "vocoder", tmp_path / "vocoder.onnx")
    assert parity and max(parity.values()) <= 1e-4
    graph = onnx.load(str(tmp_path / "vocoder.onnx")).graph
    assert [i.name for i in graph.input] == ["mel", "f0", "phase0", "noise"]  # the vocoder's contract, kept


# --- the `pretrained` config section -----------------------------------------------------------------

def _cfg(ckpt: Path, **pretrained: str) -> Config:
    base = Config()
    return dataclasses.replace(base, paths=dataclasses.replace(base.paths, checkpoint=str(ckpt)),
                               runtime=dataclasses.replace(base.runtime, threads=1),
                               pretrained=PretrainedConfig(**pretrained))


@pytest.fixture(scope="module")
def hubert_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "hubert-trained.pt"
    model = _svc_model(content_features="hubert-soft", mel_features="hifigan", **TINY)
    return save_checkpoint(model, path, trained=False)


def test_pretrained_content_runs_in_the_torch_backend(hubert_file: tuple[Path, RefHubertSoft],
                                                      hubert_checkpoint: Path, tmp_path: Path) -> None:
    from engine.runners import load_runners

    gen_path, ref_gen = save_hifigan(tmp_path / "hifigan", V1_SMALL)
    cfg = _cfg(hubert_checkpoint, content=f"hubert-soft:{hubert_file[0]}", vocoder=f"hifigan:{gen_path}")
    runners = load_runners(cfg, "torch")
    assert runners.checkpoint is not None
    assert runners.checkpoint.info["pretrained"] == {"content": f"hubert-soft:{hubert_file[0]}",
                                                     "vocoder": f"hifigan:{gen_path}"}
    plain = load_checkpoint(hubert_checkpoint)
    assert runners.checkpoint.sha256 != plain.sha256  # artifacts exported without these files are stale
    audio = _audio(1600).numpy()
    content = runners.content_encoder(audio=audio)
    with torch.inference_mode():
        ref = hubert_file[1].units(torch.from_numpy(audio))  # [1, 5, 256]
    assert content.shape == (1, 256, 10)
    np.testing.assert_allclose(content[:, :, 1], (0.75 * ref[:, 0] + 0.25 * ref[:, 1]).numpy(), rtol=1e-4, atol=1e-5)
    mel = (np.random.default_rng(0).standard_normal((1, 80, 10)) - 4).astype(np.float32)
    wave = runners.vocoder(mel=mel, f0=np.full((1, 10), 220, np.float32), phase0=np.zeros((1, 1), np.float32),
                           noise=np.zeros((1, 1, 1600), np.float32))
    with torch.inference_mode():
        np.testing.assert_allclose(wave, ref_gen(torch.from_numpy(mel)).numpy(), rtol=1e-4, atol=1e-6)


def test_features_the_flow_was_not_trained_on_are_refused(hubert_file: tuple[Path, RefHubertSoft],
                                                          hubert_checkpoint: Path, tmp_path: Path) -> None:
    builtin = save_checkpoint(_svc_model(), tmp_path / "builtin.pt", trained=False)
    with pytest.raises(CheckpointError, match=r"trained on 'autovoice-ppg' content features.*never seen hubert-soft"):
        attach_pretrained(_cfg(builtin, content=f"hubert-soft:{hubert_file[0]}"), load_checkpoint(builtin))
    with pytest.raises(CheckpointError, match=r"trained on 'hubert-soft' content features.*pretrained\.content"):
        attach_pretrained(_cfg(hubert_checkpoint), load_checkpoint(hubert_checkpoint))
    gen_path, _ = save_hifigan(tmp_path / "hifigan", V1_SMALL)
    with pytest.raises(CheckpointError, match=r"makes 'autovoice' mels"):
        attach_pretrained(_cfg(builtin, vocoder=f"hifigan:{gen_path}"), load_checkpoint(builtin))
    with pytest.raises(ConfigError, match="expected 'hubert-soft:PATH'"):
        attach_pretrained(_cfg(hubert_checkpoint, content=str(hubert_file[0])), load_checkpoint(hubert_checkpoint))
    unchanged = load_checkpoint(builtin)
    assert attach_pretrained(_cfg(builtin), unchanged) is unchanged  # nothing configured, nothing needed


def test_pretrained_keys_come_from_the_config_file(tmp_path: Path) -> None:
    from engine.config import load_config

    cfg = load_config(environ={"AUTOVOICE__PRETRAINED__CONTENT": "hubert-soft:/models/hubert-soft-0d54a1f4.pt"})
    assert cfg.pretrained.content == "hubert-soft:/models/hubert-soft-0d54a1f4.pt" and cfg.pretrained.vocoder is None
    assert cfg.model.content_features == "autovoice-ppg" and cfg.model.mel_features == "autovoice"


def test_training_refuses_features_it_cannot_train_on(tmp_path: Path) -> None:
    from engine.training.run import TrainPlan, _initial_model

    base = Config()
    cfg = dataclasses.replace(base, model=dataclasses.replace(base.model, content_features="hubert-soft"))
    with pytest.raises(ConfigError, match="trains on the built-in content encoder's features"):
        _initial_model(cfg, TrainPlan(corpus=tmp_path, work=tmp_path, out=tmp_path))
    assert not (tmp_path / "init.pt").exists()
    assert _initial_model(base, TrainPlan(corpus=tmp_path, work=tmp_path, out=tmp_path)) is not None


@pytest.mark.slow
def test_exported_pipeline_carries_the_pretrained_components(hubert_file: tuple[Path, RefHubertSoft],
                                                             hubert_checkpoint: Path, tmp_path: Path) -> None:
    """`autovoice export` with ``pretrained.content`` set: the ONNX content encoder is HuBERT-Soft, its manifest
    names the combined identity, and the ONNX Runtime backend loads the folder only with the same files."""
    from engine.export.manifest import read_manifest
    from engine.export.onnx_export import export_voice_conversion_pipeline
    from engine.runners import load_runners

    gen_path, _ = save_hifigan(tmp_path / "hifigan", V3_SMALL)
    cfg = _cfg(hubert_checkpoint, content=f"hubert-soft:{hubert_file[0]}", vocoder=f"hifigan:{gen_path}")
    out = tmp_path / "onnx"
    export_voice_conversion_pipeline(cfg, out)
    torch_runners = load_runners(cfg, "torch")
    ort_runners = load_runners(cfg, "onnxruntime", engine_dir=out)
    assert torch_runners.checkpoint is not None
    assert read_manifest(out, "content_encoder").checkpoint_sha256 == torch_runners.checkpoint.sha256
    audio = _audio(2400).numpy()
    ref = torch_runners.content_encoder(audio=audio)
    got = ort_runners.content_encoder(audio=audio)
    assert got.shape == ref.shape == (1, 256, 15)
    assert np.max(np.abs(got - ref)) <= 1e-4 * np.max(np.abs(ref))
    other, _ = save_hifigan(tmp_path / "other", V3_SMALL, seed=1)
    with pytest.raises(ArtifactError, match="stale"):
        load_runners(dataclasses.replace(cfg, pretrained=PretrainedConfig(content=cfg.pretrained.content,
                                                                          vocoder=f"hifigan:{other}")),
                     "onnxruntime", engine_dir=out)
