"""The CMRAN paper's ablation families as ``sweep`` entries: name -> (train options, the paper's VGG-19
test accuracy: supervised, weak; None = not published)."""

from __future__ import annotations

SWEEP: dict[str, tuple[list[str], tuple[float | None, float | None]]] = {
    "full": ([], (77.4, 72.9)),
    "no_cmra": (["--cmra", "none"], (76.07, 72.03)),
    "self_attention": (["--cmra", "self"], (76.42, 72.46)),
    "co_attention": (["--cmra", "co"], (76.64, 72.24)),
    "cmra_f": (["--cmra", "feature_concat"], (75.62, 71.67)),
    "no_agsca": (["--visual-attention", "average"], (76.24, 72.16)),
    "agva": (["--visual-attention", "agva"], (76.95, 72.34)),
    "no_av_interaction": (["--interaction", "none"], (77.09, 72.61)),
    "self_interaction": (["--interaction", "self"], (77.29, 72.64)),
    # ITR depth L (the full model is L = 2), Table 5, supervised only
    "itr_L0": (["--itr-layers", "0"], (76.73, None)),
    "itr_L1": (["--itr-layers", "1"], (77.09, None)),
    "itr_L3": (["--itr-layers", "3"], (76.86, None)),
    "itr_L4": (["--itr-layers", "4"], (76.67, None)),
    # baselines built from the same parts (Tian et al. ECCV 2018's supervised numbers)
    "audio_only": (["--arch", "audio_only"], (59.5, None)),
    "visual_only": (["--arch", "visual_only"], (55.3, None)),
    "audio_visual": (["--arch", "audio_visual"], (71.4, None)),
    "audio_visual_agva": (["--arch", "audio_visual_agva"], (72.7, None)),
}
