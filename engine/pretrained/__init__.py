"""Published pretrained networks, loaded from their official file layouts, behind our component interfaces.

- :mod:`~engine.pretrained.hubert_soft`: HuBERT-Soft (soft speech units) and :func:`load_hubert_soft`.
- :mod:`~engine.pretrained.hifigan`: the HiFi-GAN generator (V1/V2/V3 by config) and :func:`load_hifigan`.
- :mod:`~engine.pretrained.official_state`: weights-only reading, ``module.`` and weight-norm key handling,
  strict key and shape checks.
- :mod:`~engine.pretrained.adapters`: the content-encoder and vocoder adapters.
- :mod:`~engine.pretrained.attach`: the ``pretrained`` config section applied to a loaded checkpoint.
"""

from engine.pretrained.hifigan import HiFiGANConfig, HiFiGANGenerator, load_hifigan, read_hifigan_config
from engine.pretrained.hubert_soft import HubertSoft, HubertSoftSizes, load_hubert_soft

__all__ = ["HiFiGANConfig", "HiFiGANGenerator", "HubertSoft", "HubertSoftSizes", "load_hifigan", "load_hubert_soft",
           "read_hifigan_config"]
